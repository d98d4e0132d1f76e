//! The `users` binary: serves the users service, or runs an operator command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use platform_telemetry::Component;
use users::{Application, Settings};

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
    // Settings are checked before anything binds or logs, so a bad value stops the
    // process at once with the key it is about.
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            #[allow(clippy::print_stderr, reason = "no logger before settings")]
            {
                eprintln!("users: {error}");
            }
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "the error must reach the operator even if logging failed"
            )]
            {
                eprintln!("users: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let telemetry = platform_telemetry::init(
        Component {
            name: "users",
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
        tracing::error!(%error, "users service failed");
    }
    telemetry.shutdown().await;
    Ok(result?)
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
