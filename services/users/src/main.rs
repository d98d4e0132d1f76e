//! The `users` binary: serves the users service, or runs an operator command
//! (`users --help`); everything but the service itself is `platform-kernel`'s.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform_kernel::run::<users::Users>().await
}
