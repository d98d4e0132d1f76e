//! Every outgoing gRPC call of the platform goes through this crate, so each one is
//! balanced, bounded, traced and measured the same way whoever makes it.
//!
//! # Layout
//!
//! - [`channel`]: one channel per upstream URL. A DNS name is re-resolved
//!   periodically and every address becomes an endpoint of a balanced channel, so a
//!   Kubernetes headless Service spreads calls over its pods and follows scaling.
//!   [`Channels`] hands out the channel of a URL, opening it on first use.
//! - [`connection`]: the HTTP/2 connection to one endpoint, made on first use and
//!   again after it closes; a call opens its stream from its own task.
//! - [`pool`]: the endpoints of one upstream behind a power-of-two-choices balancer
//!   that avoids an endpoint that has just failed, and ejects one that keeps failing
//!   for a growing interval (`rpc_client_ejections_total`).
//! - [`layer`]: the tower layer every call passes through: the client span
//!   (OpenTelemetry RPC conventions) with `traceparent` injected inside it, the
//!   caller's deadline sent as `grpc-timeout` and enforced, and the
//!   `rpc_client_call_duration_seconds` histogram.
//! - [`retry`]: under that layer, transparent retries of calls that never reached a
//!   handler, and of calls marked [`SafeToRepeat`] that met UNAVAILABLE, within a
//!   retry budget and the call's deadline (`rpc_client_retries_total`).
//! - [`Client`]: a shared channel under both layers. Generated clients run over it
//!   (`UserServiceClient::new(client)`), as do dynamic calls with `tonic::client::Grpc`.
//! - [`health`]: the `grpc.health.v1` probe used by readiness checks.
//! - [`body`], [`handles`] and [`middleware`]: what the server side builds on too:
//!   response bodies that report their call's status, metric handles kept per method
//!   and status code, and the frame of the layers around a server's routes
//!   (`platform-server`'s and `platform-auth`'s).
//! - [`settings`]: the `[client]` section of a calling service's settings: a DNS
//!   server to resolve with ([`dns`]) instead of the system resolver, re-resolution,
//!   retries and ejection.
//!
//! A caller gives its remaining budget the tonic way, with
//! [`tonic::Request::set_timeout`]; the client's default timeout bounds it.

pub mod body;
pub mod channel;
pub mod connection;
pub mod dns;
pub mod handles;
pub mod health;
pub mod layer;
pub mod middleware;
pub mod pool;
pub mod retry;
pub mod settings;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tonic::body::Body;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;
use tower_layer::Layer;
use tower_service::Service;

pub use channel::{ChannelOptions, Channels, ClientError, Resolve, SystemResolver};
pub use dns::DnsServerResolver;
pub use health::is_serving;
pub use layer::{ClientLayer, ClientService, encode_timeout, grpc_timeout, names};
pub use pool::{Balanced, BoxError, OutlierOptions};
pub use retry::{RetryLayer, RetryOptions, SafeToRepeat};
pub use settings::ClientSettings;

/// What calls can be sent through: a balanced channel, or any other transport (a plain
/// tonic `Channel` in tests).
pub trait Transport:
    Service<Request<Body>, Response = Response<Body>, Error: Into<BoxError>, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> Transport for S where
    S: Service<
            Request<Body>,
            Response = Response<Body>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// The [`Transport`] a [`Client`] sends its calls through.
type BoxTransport = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// A shared channel to one upstream under [`ClientLayer`] and [`RetryLayer`]: cheap
/// to clone, and every clone uses the same connections and retry budget.
#[derive(Debug, Clone)]
pub struct Client {
    service: ClientService<retry::Retrying<BoxTransport>>,
    url: Arc<str>,
}

impl Client {
    /// A client over `transport`, which was opened for `url`, retrying with the
    /// default [`RetryOptions`] in a budget of its own; calls without a deadline of
    /// their own get `default_timeout`.
    pub fn new(transport: impl Transport + Sync, url: &str, default_timeout: Duration) -> Self {
        Self::with_retry(
            transport,
            url,
            default_timeout,
            RetryLayer::new(RetryOptions::default()),
        )
    }

    /// A client over `transport` retrying as `retry` says (and within its budget,
    /// shared with every client given a clone of it).
    pub fn with_retry(
        transport: impl Transport + Sync,
        url: &str,
        default_timeout: Duration,
        retry: RetryLayer,
    ) -> Self {
        let transport = BoxCloneSyncService::new(transport.map_err(Into::into));
        Self {
            service: ClientLayer::new(default_timeout).layer(retry.layer(transport)),
            url: url.into(),
        }
    }

    /// The URL the channel was opened for (for logs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound put on every call, whatever deadline the caller asks for.
    pub fn default_timeout(&self) -> Duration {
        self.service.default_timeout()
    }

    /// The same channel with another default timeout.
    #[must_use]
    pub fn with_default_timeout(&self, default_timeout: Duration) -> Self {
        Self {
            service: ClientLayer::new(default_timeout).layer(self.service.get_ref().clone()),
            url: Arc::clone(&self.url),
        }
    }
}

impl Service<Request<Body>> for Client {
    type Response = Response<Body>;
    type Error = tonic::Status;
    type Future = layer::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.service.call(request)
    }
}
