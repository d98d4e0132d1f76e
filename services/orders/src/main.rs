//! The `orders` binary: serves the orders service, or applies its migrations.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orders::{Application, Settings};
use platform_server::process;
use platform_telemetry::Component;

const COMPONENT: Component = Component {
    name: "orders",
    version: env!("CARGO_PKG_VERSION"),
};

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
    let settings: Settings = match process::load_settings(COMPONENT.name, cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => process::serve(COMPONENT, &settings.log.clone(), |shutdown| async move {
            Application::build(settings)
                .await?
                .run_until_stopped(shutdown)
                .await
        })
        .await
        .map_err(anyhow::Error::from),
        Command::Migrate => migrate(&settings).await,
    };
    process::exit(COMPONENT.name, result)
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
