//! The HTTP/2 connection to one endpoint, against peers on loopback that do exactly
//! what each test needs: an `h2` server that counts what it is sent, and a socket that
//! accepts and then says nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, StreamBody};
use platform_client::connection::{ConnectOptions, Connection};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::{Code, Status};

fn options(keep_alive: Duration) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(1),
        keep_alive_interval: keep_alive,
        keep_alive_timeout: keep_alive,
    }
}

/// An h2 server that reads every request body to its end and answers with the
/// number of bytes it got in a `received` trailer. Each connection it accepts is
/// counted; `close_after_each` makes it close a connection after one request.
async fn counting_server(
    close_after_each: bool,
) -> (SocketAddr, tokio::sync::watch::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, accepted_rx) = tokio::sync::watch::channel(0usize);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.send_modify(|n| *n += 1);
            tokio::spawn(async move {
                let mut connection = h2::server::handshake(tcp).await.unwrap();
                // The connection is polled here; each request is answered in a task.
                while let Some(Ok((request, respond))) = connection.accept().await {
                    tokio::spawn(answer(request, respond));
                    if close_after_each {
                        connection.graceful_shutdown();
                    }
                }
            });
        }
    });
    (addr, accepted_rx)
}

async fn answer(request: Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
    let mut body = request.into_body();
    let mut received = 0usize;
    while let Some(Ok(data)) = body.data().await {
        received += data.len();
        body.flow_control().release_capacity(data.len()).unwrap();
    }
    let mut stream = respond.send_response(Response::new(()), false).unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("received", HeaderValue::from(received));
    stream.send_trailers(trailers).unwrap();
}

/// What the server said it received.
async fn received(response: Response<Body>) -> usize {
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    trailers["received"].to_str().unwrap().parse().unwrap()
}

fn post(body: Body) -> Request<Body> {
    let mut request = Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = "/echo.v1.Echo/Count".parse().unwrap();
    request
}

#[tokio::test]
async fn a_streamed_body_larger_than_the_window_arrives_whole() {
    let (addr, _) = counting_server(false).await;
    let connection = Connection::lazy(addr, options(Duration::from_secs(30)));
    // 4 MiB in 64 KiB pieces, each produced after the one before was taken: more
    // than the server's 64 KiB stream window, and pending between pieces, so the
    // body goes on in a task of its own and waits for window updates.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(1);
    tokio::spawn(async move {
        for _ in 0..64 {
            tokio::task::yield_now().await;
            if tx
                .send(Ok(Frame::data(Bytes::from(vec![7u8; 64 * 1024]))))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let body = Body::new(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let call = async { received(connection.send(post(body)).await.unwrap()).await };
    let received = tokio::time::timeout(Duration::from_secs(20), call).await;
    assert_eq!(received.expect("the whole body is sent"), 4 * 1024 * 1024);
}

#[tokio::test]
async fn a_peer_that_reads_nothing_holds_the_body_back() {
    // Takes the request, never reads its body: its window (64 KiB) fills up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut connection = h2::server::handshake(tcp).await.unwrap();
        let mut held = Vec::new();
        while let Some(Ok(request)) = connection.accept().await {
            held.push(request);
        }
    });
    let connection = Connection::lazy(addr, options(Duration::from_secs(30)));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(1);
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = {
        let produced = std::sync::Arc::clone(&produced);
        tokio::spawn(async move {
            for _ in 0..1024 {
                let piece = Frame::data(Bytes::from(vec![7u8; 64 * 1024]));
                if tx.send(Ok(piece)).await.is_err() {
                    return;
                }
                produced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let body = Body::new(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    let call = tokio::spawn(async move { connection.send(post(body)).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taken = produced.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        taken < 8,
        "{taken} pieces of 64 KiB taken for a peer that reads nothing"
    );
    call.abort();
    producer.abort();
}

#[tokio::test]
async fn calls_share_one_connection_and_a_closed_one_is_made_again() {
    let (addr, accepted) = counting_server(false).await;
    let connection = Connection::lazy(addr, options(Duration::from_secs(30)));
    let calls = (0..8).map(|_| {
        let connection = connection.clone();
        async move {
            let body = Body::new(Full::new(Bytes::from_static(b"hello")));
            received(connection.send(post(body)).await.unwrap()).await
        }
    });
    let sizes = futures_util::future::join_all(calls).await;
    assert_eq!(sizes, vec![5; 8]);
    assert_eq!(
        *accepted.borrow(),
        1,
        "eight concurrent calls, one connection"
    );

    let (addr, accepted) = counting_server(true).await;
    let connection = Connection::lazy(addr, options(Duration::from_secs(30)));
    for _ in 0..3 {
        let body = Body::new(Full::new(Bytes::from_static(b"hi")));
        assert_eq!(
            received(connection.send(post(body)).await.unwrap()).await,
            2
        );
        // The server's GOAWAY and close reach the client between calls.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *accepted.borrow(),
        3,
        "each call after a close made a new connection"
    );
}

#[tokio::test]
async fn a_peer_that_goes_silent_is_dropped_by_the_keep_alive() {
    // Accepts, then never says a word: no SETTINGS, no answer, no PING ack.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let connection = Connection::lazy(addr, options(Duration::from_millis(200)));
    let started = Instant::now();
    let body = Body::new(Full::new(Bytes::from_static(b"hello")));
    let call = tokio::time::timeout(Duration::from_secs(10), connection.send(post(body)));
    let error = call
        .await
        .expect("the keep-alive ends the call")
        .unwrap_err();
    let status = Status::from_error(error);
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let connection = Connection::lazy(addr, options(Duration::from_secs(30)));
    let body = Body::new(Full::new(Bytes::from_static(b"hello")));
    let error = connection.send(post(body)).await.unwrap_err();
    assert!(
        platform_client::retry::never_sent(error.as_ref()).is_some(),
        "not sent, so safe to retry: {error}"
    );
    assert_eq!(Status::from_error(error).code(), Code::Unavailable);
}
