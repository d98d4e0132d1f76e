//! A request body that must keep arriving: at most a timeout between frames, else it
//! fails with [`BodyReadTimeout`].
//!
//! tower-http's `TimeoutBody` arms a timer on every poll for a frame; here the timer is
//! armed only once the body makes its reader wait. Most request bodies are already
//! buffered when the handler reads them, and then cost no timer at all.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Why a body read failed: the client sent nothing for longer than allowed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the client sent no request body data in time")]
pub struct BodyReadTimeout;

pin_project_lite::pin_project! {
    /// See the [module docs](self).
    #[derive(Debug)]
    pub struct ReadTimeout<B> {
        #[pin]
        body: B,
        #[pin]
        waiting: Option<Sleep>,
        timeout: Duration,
    }
}

impl<B> ReadTimeout<B> {
    /// `body`, failing once `timeout` passes without a frame while it is read.
    pub fn new(body: B, timeout: Duration) -> Self {
        Self {
            body,
            waiting: None,
            timeout,
        }
    }
}

impl<B> Body for ReadTimeout<B>
where
    B: Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            // The next frame gets a full timeout of its own.
            this.waiting.set(None);
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.waiting.is_none() {
            this.waiting.set(Some(tokio::time::sleep(*this.timeout)));
        }
        if let Some(waiting) = this.waiting.as_pin_mut() {
            ready!(waiting.poll(cx));
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, StreamBody};

    use super::*;

    type Sent = Result<Frame<Bytes>, std::io::Error>;

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_a_timeout_after_its_last_frame() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Sent>(1);
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        let timeout = Duration::from_millis(400);
        let mut body = std::pin::pin!(ReadTimeout::new(StreamBody::new(stream), timeout));

        let frame = || Ok(Frame::data(Bytes::from_static(b"a")));
        sender.send(frame()).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok(), "a frame already there");
        // Frames 100 ms apart, 500 ms in all: the timeout starts again with each one.
        for _ in 0..5 {
            let sender = sender.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                sender.send(frame()).await.unwrap();
            });
            assert!(body.frame().await.unwrap().is_ok());
        }
        let started = tokio::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(error.is::<BodyReadTimeout>(), "{error}");
        assert!(started.elapsed() >= timeout);
        drop(sender);
    }
}
