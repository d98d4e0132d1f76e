//! One HTTP/2 connection per endpoint, driven with `h2` directly.
//!
//! A call opens its stream from the caller's own task: the request goes into the
//! connection's shared state, the answer is awaited where it was asked for, and the
//! connection's task only moves frames. A tonic `Channel` puts two more tasks in the
//! way of every call (a buffer worker, then hyper's dispatcher with a task per
//! answer), each a hand-over and a wake-up; an edge that forwards every request pays
//! them on every request.
//!
//! The connection is made on first use, shared by every call to the endpoint, and made
//! again once it closes: the peer went away, sent GOAWAY, or left a keep-alive PING
//! unanswered. Calls that arrive while it is being made wait for that one attempt
//! instead of making their own. A connection that cannot be made fails the call with
//! a [`tonic::ConnectError`] (UNAVAILABLE, and never sent, so it is retried), and a
//! connection lost under a call fails it UNAVAILABLE.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use h2::client::SendRequest;
use h2::{Ping, PingPong, RecvStream, SendStream};
use http::header::USER_AGENT;
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Request, Response};
use http_body::{Body as _, Frame};
use tokio::net::TcpStream;
use tonic::Status;
use tonic::body::Body;

use crate::pool::BoxError;

/// Window sizes and buffers as hyper's HTTP/2 client sets them (tonic's defaults),
/// so large answers stream as fast as they did over a tonic `Channel`.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_FRAME: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Sent when the caller set no `user-agent` of its own.
const AGENT: HeaderValue = HeaderValue::from_static(concat!(
    "grpc-rust-platform-client/",
    env!("CARGO_PKG_VERSION")
));

/// How connections are made and watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How long connecting may take before the call fails UNAVAILABLE.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 PING checks the connection, idle or busy.
    pub keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
}

type Connecting = Shared<BoxFuture<'static, Result<(u64, SendRequest<Bytes>), Arc<io::Error>>>>;

enum State {
    Idle,
    Connecting(Connecting),
    /// `generation` tells this connection from the ones made before and after it.
    Ready {
        generation: u64,
        sender: SendRequest<Bytes>,
    },
}

struct Inner {
    addr: SocketAddr,
    scheme: Scheme,
    authority: Authority,
    options: ConnectOptions,
    state: Mutex<State>,
    generations: AtomicU64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Each update is one assignment: a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Connection `generation` is gone: the next call makes a new one.
    fn closed(&self, generation: u64) {
        let mut state = self.state();
        if matches!(&*state, State::Ready { generation: current, .. } if *current == generation) {
            *state = State::Idle;
        }
    }
}

/// The connection to one endpoint. Cheap to clone: clones share it.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The connection to `addr`, made on the first call.
    pub fn lazy(addr: SocketAddr, options: ConnectOptions) -> Self {
        let authority = Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| Authority::from_static("localhost"));
        Self {
            inner: Arc::new(Inner {
                addr,
                scheme: Scheme::HTTP,
                authority,
                options,
                state: Mutex::new(State::Idle),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// Sends `request` (its URI's path; the endpoint gives scheme and authority) and
    /// waits for the answer's head. The body streams after.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, BoxError> {
        let mut sender = self.ready().await?;
        let (mut head, body) = request.into_parts();
        head.uri = self.origin(head.uri)?;
        if !head.headers.contains_key(USER_AGENT) {
            head.headers.insert(USER_AGENT, AGENT);
        }
        let end_of_stream = body.is_end_stream();
        let (answer, stream) = sender
            .send_request(Request::from_parts(head, ()), end_of_stream)
            .map_err(lost)?;
        if !end_of_stream {
            Pump {
                body,
                stream,
                started: false,
            }
            .start()
            .await;
        }
        let answer = answer.await.map_err(lost)?;
        Ok(answer.map(|recv| {
            Body::new(Incoming {
                recv,
                data_done: false,
                finished: false,
            })
        }))
    }

    fn origin(&self, uri: Uri) -> Result<Uri, BoxError> {
        let mut parts = uri.into_parts();
        parts.scheme = Some(self.inner.scheme.clone());
        parts.authority = Some(self.inner.authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
        }
        Ok(Uri::from_parts(parts)?)
    }

    /// A sender that can open a stream now. A connection found closed is replaced
    /// once; closed again, its error is the answer.
    async fn ready(&self) -> Result<SendRequest<Bytes>, BoxError> {
        let mut replaced = false;
        loop {
            let (generation, sender) = self.sender().await?;
            match sender.ready().await {
                Ok(sender) => return Ok(sender),
                Err(error) => {
                    self.inner.closed(generation);
                    if replaced {
                        return Err(lost(error));
                    }
                    replaced = true;
                }
            }
        }
    }

    /// The current connection's sender, connecting first when there is none.
    async fn sender(&self) -> Result<(u64, SendRequest<Bytes>), BoxError> {
        let connecting = {
            let mut state = self.inner.state();
            match &*state {
                State::Ready { generation, sender } => return Ok((*generation, sender.clone())),
                State::Connecting(connecting) => connecting.clone(),
                State::Idle => {
                    let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed);
                    let connecting = connect(
                        self.inner.addr,
                        self.inner.options,
                        generation,
                        Arc::downgrade(&self.inner),
                    )
                    .boxed()
                    .shared();
                    *state = State::Connecting(connecting.clone());
                    connecting
                }
            }
        };
        let result = connecting.clone().await;
        {
            let mut state = self.inner.state();
            if matches!(&*state, State::Connecting(current) if current.ptr_eq(&connecting)) {
                *state = match &result {
                    Ok((generation, sender)) => State::Ready {
                        generation: *generation,
                        sender: sender.clone(),
                    },
                    Err(_) => State::Idle,
                };
            }
        }
        result.map_err(|error| {
            let error = io::Error::new(
                error.kind(),
                format!("cannot connect to {}: {error}", self.inner.addr),
            );
            Box::new(tonic::ConnectError(Box::new(error))) as BoxError
        })
    }
}

/// Makes connection `generation` to `addr` and starts the task that drives it.
async fn connect(
    addr: SocketAddr,
    options: ConnectOptions,
    generation: u64,
    owner: Weak<Inner>,
) -> Result<(u64, SendRequest<Bytes>), Arc<io::Error>> {
    let tcp = match tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr)).await {
        Ok(tcp) => tcp?,
        Err(_) => {
            return Err(Arc::new(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {:?}", options.connect_timeout),
            )));
        }
    };
    tcp.set_nodelay(true)?;
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_header_list_size(MAX_HEADER_LIST)
        .max_send_buffer_size(MAX_SEND_BUFFER)
        .enable_push(false)
        .handshake::<_, Bytes>(tcp)
        .await
        .map_err(|error| Arc::new(into_io(error)))?;
    let ping_pong = connection.ping_pong();
    tokio::spawn(async move {
        let alive = async {
            match ping_pong {
                Some(ping_pong) => keep_alive(ping_pong, options).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = connection => {
                if let Err(error) = result {
                    tracing::debug!(endpoint = %addr, %error, "upstream connection closed");
                }
            }
            () = alive => {
                tracing::warn!(
                    endpoint = %addr,
                    timeout_ms = options.keep_alive_timeout.as_millis() as u64,
                    "upstream connection dropped: keep-alive PING unanswered"
                );
            }
        }
        if let Some(owner) = owner.upgrade() {
            owner.closed(generation);
        }
    });
    Ok((generation, sender))
}

/// Returns when a PING goes unanswered for the timeout; pends forever once the
/// connection cannot send one (it is closing, and its own end is reported).
async fn keep_alive(mut ping_pong: PingPong, options: ConnectOptions) {
    loop {
        tokio::time::sleep(options.keep_alive_interval).await;
        if ping_pong.send_ping(Ping::opaque()).is_err() {
            return std::future::pending().await;
        }
        let pong = std::future::poll_fn(|cx| ping_pong.poll_pong(cx));
        match tokio::time::timeout(options.keep_alive_timeout, pong).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

fn into_io(error: h2::Error) -> io::Error {
    if error.is_io() {
        error
            .into_io()
            .unwrap_or_else(|| io::Error::other("HTTP/2 I/O error"))
    } else {
        io::Error::other(error)
    }
}

/// An h2 error as the caller sees it: the connection lost under the call is
/// UNAVAILABLE; anything else (a reset, a GOAWAY) stays an h2 error, which the retry
/// layer reads and tonic turns into the status its reason says.
fn lost(error: h2::Error) -> BoxError {
    if error.is_io() {
        Box::new(Status::unavailable(format!(
            "upstream connection lost: {error}"
        )))
    } else {
        Box::new(error)
    }
}

/// Sends a request body into its stream, taking no more than the peer's window
/// allows before reading on.
struct Pump {
    body: Body,
    stream: SendStream<Bytes>,
    /// Whether a frame has been sent. The first is sent as soon as it is ready: it is
    /// in memory already, and a unary call's whole message, which then needs no task
    /// of its own waiting for the window of a stream the connection has yet to open.
    started: bool,
}

impl Pump {
    /// Sends what is ready now; whatever is not (a client stream) goes on in a task
    /// of its own, while the caller waits for the answer.
    async fn start(mut self) {
        let sent = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut self).poll(cx))).await;
        if sent.is_pending() {
            tokio::spawn(self);
        }
    }
}

impl Pump {
    /// Ready(true) once the stream has window to send into, Ready(false) once it is
    /// reset or closed (nobody reads the rest).
    fn poll_window(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        self.stream.reserve_capacity(1);
        if self.stream.capacity() > 0 {
            return Poll::Ready(self.stream.poll_reset(cx).is_pending());
        }
        loop {
            match ready!(self.stream.poll_capacity(cx)) {
                Some(Ok(0)) => {}
                Some(Ok(_)) => return Poll::Ready(true),
                Some(Err(_)) | None => return Poll::Ready(false),
            }
        }
    }
}

impl Future for Pump {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            // Some window before reading on, so a fast body cannot queue up without
            // bound; h2 splits what is sent to fit the window.
            if this.started && !ready!(this.poll_window(cx)) {
                return Poll::Ready(());
            }
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => {
                    // Ends a body that did not know it was ending.
                    let _ = this.stream.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        this.started = true;
                        let end = this.body.is_end_stream();
                        if this.stream.send_data(data, end).is_err() || end {
                            return Poll::Ready(());
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            let _ = this.stream.send_trailers(trailers);
                        }
                        return Poll::Ready(());
                    }
                },
                Some(Err(error)) => {
                    tracing::debug!(%error, "request body failed: stream cancelled");
                    this.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The body of an answer: its data, each piece handed back to the flow-control
/// window as it is read, then its trailers.
struct Incoming {
    recv: RecvStream,
    data_done: bool,
    finished: bool,
}

impl http_body::Body for Incoming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // Only fails once the stream is gone, which the next poll reports.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(lost(error))));
                }
                None => this.data_done = true,
            }
        }
        let trailers = ready!(this.recv.poll_trailers(cx));
        this.finished = true;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(lost(error)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.recv.is_end_stream()
    }
}
