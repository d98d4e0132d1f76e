//! The `gateway` binary: serves the HTTP/JSON edge, or prints its OpenAPI document
//! (`gateway --help`); everything but the edge itself is `platform-kernel`'s.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform_kernel::run::<gateway::Gateway>().await
}
