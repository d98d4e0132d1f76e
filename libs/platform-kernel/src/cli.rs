//! The command line every binary shares, and [`run`], which carries a process from
//! its arguments to its exit code.
//!
//! ```text
//! users [--config FILE] [serve]          serve until SIGTERM/SIGINT (the default)
//! users [--config FILE] migrate          apply the migrations and exit (with a database)
//! users [--config FILE] healthcheck      exit 0 when serving, 1 otherwise
//! users [--config FILE] admin create ... the service's own subcommands
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use platform_config::Layered;

use crate::healthcheck::HealthcheckArgs;
use crate::process;
use crate::{Application, KernelSettings, Service};

/// The arguments of a binary whose own subcommands are `C`.
#[derive(Debug, Parser)]
pub struct Cli<C: Subcommand> {
    /// A TOML settings file; environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when absent.
    #[command(subcommand)]
    pub command: Option<Command<C>>,
}

/// The kernel's subcommands and the service's own.
#[derive(Debug, Subcommand)]
pub enum Command<C: Subcommand> {
    /// Serve the public and admin ports (the default).
    Serve,
    /// Apply the database migrations and exit (for a Kubernetes Job or init container).
    Migrate,
    /// Check that the running service is serving: exit 0 if so, 1 if not.
    Healthcheck(HealthcheckArgs),
    /// The service's own subcommands.
    #[command(flatten)]
    Service(C),
}

/// The subcommands of a service that has none of its own.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum NoCommand {}

/// The command line of `S`: its name, version and about line, its environment
/// prefix in the help of `--config`, and `migrate` only with a database.
pub fn command<S: Service>() -> clap::Command {
    let prefix = <S::Settings as Layered>::ENV_PREFIX;
    let mut command = Cli::<S::Command>::command()
        .name(S::COMPONENT.name)
        .bin_name(S::COMPONENT.name)
        .version(S::COMPONENT.version)
        .about(S::ABOUT)
        .mut_arg("config", |arg| {
            arg.help(format!(
                "A TOML settings file; `{prefix}__…` environment variables override it"
            ))
        });
    if !has_database::<S>() {
        command = command.mut_subcommand("migrate", |migrate| migrate.hide(true));
    }
    command
}

/// Whether `S` owns a database (asked of its default settings: which sections they
/// have does not depend on their values).
fn has_database<S: Service>() -> bool {
    S::Settings::default().sections().database.is_some()
}

/// Parses `args` (the first is the program name) for service `S`.
pub fn parse<S: Service, I, T>(args: I) -> Result<Cli<S::Command>, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command::<S>().try_get_matches_from(args)?;
    Cli::<S::Command>::from_arg_matches(&matches)
}

/// Runs the process of service `S` from the process's arguments to its exit code.
pub async fn run<S: Service>() -> ExitCode {
    let cli = match parse::<S, _, _>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let name = S::COMPONENT.name;
    let settings: S::Settings = match process::load_settings(name, cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::<S>(settings).await,
        Command::Migrate => migrate::<S>(&settings).await,
        Command::Healthcheck(args) => {
            return crate::healthcheck::run(settings.sections().probe, &args).await;
        }
        Command::Service(command) => S::command(settings, command).await,
    };
    process::exit(name, result)
}

/// Telemetry, then the service until SIGTERM/SIGINT and its drain, then a span flush.
async fn serve<S: Service>(settings: S::Settings) -> anyhow::Result<()> {
    let telemetry = platform_telemetry::init(S::COMPONENT, settings.sections().log)
        .context("starting telemetry")?;
    let shutdown = platform_shutdown::from_os_signals();
    let result = match Application::<S>::build(settings).await {
        Ok(app) => app.run_until_stopped(shutdown).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        let error = format!("{error:#}");
        tracing::error!(%error, component = S::COMPONENT.name, "component failed");
    }
    telemetry.shutdown().await;
    result
}

async fn migrate<S: Service>(settings: &S::Settings) -> anyhow::Result<()> {
    let Some((database, migrations)) = settings.sections().database else {
        anyhow::bail!("{} has no database to migrate", S::COMPONENT.name);
    };
    platform_db::migrate(database, migrations)
        .await
        .context("applying migrations")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("{}: migrations applied", S::COMPONENT.name);
    }
    Ok(())
}
