//! The peers of the edge benchmark (`bench/run.py`): a tonic echo backend and the
//! smallest hand-written HTTP/JSON → gRPC proxy in front of it (axum + tonic, one
//! shared channel). The proxy is the floor any edge pays for HTTP/1, JSON and HTTP/2;
//! the gateway is measured against it, exposing the same RPC from the descriptor set
//! alone.

/// The echo service's generated types, client and server.
#[allow(
    unreachable_pub,
    missing_debug_implementations,
    reason = "generated code"
)]
pub mod pb {
    tonic::include_proto!("echo.v1");
}

/// The echo service's encoded descriptor set, `google.api.http` annotations included.
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/echo_descriptor_set.bin"));

/// A command-line peer's error, printed by `main`.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
