//! The HTTP/JSON edge of the platform: every RPC annotated with `google.api.http` is
//! exposed over HTTP, with routes and JSON mapping derived from the descriptors.
//!
//! # Layout
//!
//! - [`routing`]: path templates, the [`RouteTable`] built from a descriptor pool at
//!   start-up, and matching a request's method and path to a [`Route`].
//! - [`transcode`]: building the gRPC request message from path bindings, query string
//!   and JSON body; rendering the response message as canonical proto3 JSON.

pub mod app;
pub mod edge;
pub mod errors;
mod fields;
pub mod openapi;
pub mod ratelimit;
pub mod routing;
pub mod settings;
pub mod transcode;
pub mod upstream;

pub use app::{AppError, Application, Gateway};
pub use routing::{Route, RouteError, RouteMatch, RouteTable};
pub use settings::Settings;
pub use transcode::{TranscodeError, build_request, render_response};
