//! The `orders` binary: serves the orders service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orders::{Application, Settings};
use platform_telemetry::Component;

/// The orders service of the platform.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file; `ORDERS__…` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC and the admin port (the default).
    Serve,
    /// Apply the database migrations and exit (for a Kubernetes Job or init container).
    Migrate,
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
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
    };
    match result {
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

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    orders::app::migrate(settings)
        .await
        .context("applying migrations")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("orders: migrations applied");
    }
    Ok(())
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
