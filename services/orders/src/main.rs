//! The `orders` binary: serves the orders service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use orders::{Application, Settings};
use platform_telemetry::Component;

/// The orders service of the platform.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file; `ORDERS__…` environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Settings are checked before anything binds or logs, so a bad value stops the
    // process at once with the key it is about.
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "no logger before settings")]
            {
                eprintln!("orders: {error}");
            }
            return ExitCode::from(2);
        }
    };
    match serve(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "the error must reach the operator even if logging failed"
            )]
            {
                eprintln!("orders: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = platform_telemetry::init(
        Component {
            name: "orders",
            version: env!("CARGO_PKG_VERSION"),
        },
        &settings.log,
    )
    .context("starting telemetry")?;
    let shutdown = platform_shutdown::from_os_signals();
    let result = async {
        let app = Application::build(settings).await?;
        app.run_until_stopped(shutdown).await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(%error, "orders service failed");
    }
    telemetry.shutdown().await;
    Ok(result?)
}
