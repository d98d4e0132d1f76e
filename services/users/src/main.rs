//! The `users` binary: serves the users service, or runs an operator command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform_server::process;
use platform_telemetry::Component;
use users::{Application, Settings};

const COMPONENT: Component = Component {
    name: "users",
    version: env!("CARGO_PKG_VERSION"),
};

/// The users service of the platform.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML settings file; `USERS__…` environment variables override it.
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
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an admin account in the configured database.
    Create {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The name shown for the admin.
        #[arg(long, default_value = "Administrator")]
        display_name: String,
        /// A file holding the password (trailing newline ignored), or `-` for stdin.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
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
        Command::Admin {
            command:
                AdminCommand::Create {
                    email,
                    display_name,
                    password_file,
                },
        } => create_admin(&settings, &email, &display_name, &password_file).await,
    };
    process::exit(COMPONENT.name, result)
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    users::app::migrate(settings)
        .await
        .context("applying migrations")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("users: migrations applied");
    }
    Ok(())
}

async fn create_admin(
    settings: &Settings,
    email: &str,
    display_name: &str,
    password_file: &std::path::Path,
) -> anyhow::Result<()> {
    let password = if password_file == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the password from stdin")?
    } else {
        std::fs::read_to_string(password_file)
            .with_context(|| format!("reading the password file {}", password_file.display()))?
    };
    let password = password.trim_end_matches(['\r', '\n']);
    let user = users::app::create_admin(settings, email, display_name, password)
        .await
        .context("creating the admin account")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("created admin {} <{}>", user.id, user.email.as_str());
    }
    Ok(())
}
