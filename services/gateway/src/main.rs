//! The `gateway` binary: serves the HTTP/JSON edge, or prints its OpenAPI document.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::{Application, Settings};
use platform_telemetry::Component;

/// The HTTP/JSON edge of the platform.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file; `GATEWAY__…` environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the public and admin ports (the default).
    Serve,
    /// Print the OpenAPI document of the configured routes and exit.
    Openapi,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "no logger before settings")]
            {
                eprintln!("gateway: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Openapi => print_openapi(&settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "the error must reach the operator even if logging failed"
            )]
            {
                eprintln!("gateway: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn print_openapi(settings: &Settings) -> anyhow::Result<()> {
    let (pool, services) = gateway::app::services(settings)?;
    let table = gateway::RouteTable::build(&pool, services.into_iter().map(|(s, _)| s))?;
    let document = gateway::app::openapi_document(&table, settings);
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("{}", serde_json::to_string_pretty(&document)?);
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = platform_telemetry::init(
        Component {
            name: "gateway",
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
        tracing::error!(%error, "gateway failed");
    }
    telemetry.shutdown().await;
    Ok(result?)
}
