//! The `gateway` binary: serves the HTTP/JSON edge, or prints its OpenAPI document.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::{Application, Settings};
use platform_server::process;
use platform_telemetry::Component;

const COMPONENT: Component = Component {
    name: "gateway",
    version: env!("CARGO_PKG_VERSION"),
};

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
        Command::Openapi => print_openapi(&settings),
    };
    process::exit(COMPONENT.name, result)
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
