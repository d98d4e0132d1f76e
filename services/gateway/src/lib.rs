//! The HTTP/JSON edge of the platform: every RPC annotated with `google.api.http` is
//! exposed over HTTP, with routes and JSON mapping derived from the descriptors.
//!
//! # Layout
//!
//! - [`app`]: how `platform-kernel` builds [`Gateway`] (declared here) from settings;
//!   [`Application`] is it bound to its public and admin ports, run until a shutdown
//!   signal.
//! - [`settings`]: every setting, with defaults, from file and environment.
//! - [`routing`]: path templates, the [`RouteTable`] built from a descriptor pool at
//!   start-up, and matching a request's method and path to a [`Route`].
//! - `fields`: dotted field paths over message descriptors, shared by routing and
//!   transcoding.
//! - [`transcode`]: building the gRPC request message from path bindings, query string
//!   and JSON body; rendering the response message as canonical proto3 JSON.
//! - [`edge`]: the public HTTP port as a stack of layers (request id, CORS, routing,
//!   observation, authentication, rate limiting, body limit) over the one handler.
//! - [`ratelimit`]: per-caller token buckets, in this process or in Redis, and the
//!   layer that answers `429`.
//! - [`client_address`]: the client's address, from the peer or from the
//!   `X-Forwarded-For` of trusted proxies.
//! - [`forward`]: which request headers travel to a service as gRPC metadata, which
//!   of its metadata comes back as headers, and `x-forwarded-*`.
//! - [`errors`]: every error answer as a `google.rpc.Status` JSON body, with the gRPC
//!   → HTTP status table.
//! - [`upstream`]: the channels to the gRPC services and unary calls with dynamic
//!   messages.
//! - [`openapi`]: the OpenAPI document generated from the same routes.

pub mod app;
pub mod client_address;
pub mod edge;
pub mod errors;
mod fields;
pub mod forward;
pub mod openapi;
pub mod ratelimit;
pub mod routing;
pub mod settings;
pub mod transcode;
pub mod upstream;

pub use app::AppError;
pub use routing::{Route, RouteError, RouteMatch, RouteTable};
pub use settings::Settings;
pub use transcode::{TranscodeError, build_request, render_response};

platform_kernel::service! {
    /// The gateway, as the kernel runs it.
    pub struct Gateway;
}

/// The gateway, built and bound to its ports.
pub type Application = platform_kernel::Application<Gateway>;
