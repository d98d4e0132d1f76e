//! The `orders` binary: serves the orders service, or applies its migrations
//! (`orders --help`); everything but the service itself is `platform-kernel`'s.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform_kernel::run::<orders::Orders>().await
}
