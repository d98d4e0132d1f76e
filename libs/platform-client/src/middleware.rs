//! The frame of the tower layers around a gRPC server's routes: authentication
//! (`platform-auth`), and the per-call observation and fault injection of
//! `platform-server`.
//!
//! Each such layer is a [`Middleware`]: it says what it does with one call, given the
//! service it wraps, and its tower service is [`Wrapped`], which is ready when the
//! wrapped service is and answers every call with a boxed future.

use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tonic::body::Body;
use tower_service::Service;

/// The answer to one call through a [`Middleware`].
pub type ResponseFuture<E> = BoxFuture<'static, Result<Response<Body>, E>>;

/// What a [`Middleware`] wraps: a server's routes, or the next layer around them,
/// that can be moved into the future answering a call.
pub trait Inner<B>:
    Service<Request<B>, Response = Response<Body>, Future: Send + 'static, Error: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S, B> Inner<B> for S where
    S: Service<
            Request<B>,
            Response = Response<Body>,
            Future: Send + 'static,
            Error: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// What a layer does with each call to the service `S` it wraps.
pub trait Middleware<S: Service<Request<B>>, B> {
    /// Answers `request`; `inner` has been readied for it.
    fn call(&self, inner: &mut S, request: Request<B>) -> ResponseFuture<S::Error>;
}

/// The service of a [`Middleware`] layer: the layer's own state next to the service
/// it wraps.
#[derive(Debug, Clone)]
pub struct Wrapped<M, S> {
    middleware: M,
    inner: S,
}

impl<M, S> Wrapped<M, S> {
    /// `inner`, each call going through `middleware`.
    pub fn new(middleware: M, inner: S) -> Self {
        Self { middleware, inner }
    }
}

impl<M, S, B> Service<Request<B>> for Wrapped<M, S>
where
    M: Middleware<S, B>,
    S: Service<Request<B>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.middleware.call(&mut self.inner, request)
    }
}

/// The readied `inner`, to be moved into a call's future, leaving a clone in its place
/// for the next call (which `poll_ready` will ready in turn).
pub fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
