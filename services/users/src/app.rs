//! The users service as the kernel runs it ([`Users`]), and its operator commands.
//!
//! [`Application::build`] does everything that can fail on bad configuration (keys,
//! database URL, listening sockets) before serving anything. Once running, the
//! database is watched: migrations are applied as soon as it answers, health turns
//! SERVING only then, and readiness follows the database while it comes and goes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use platform_api::rules::CheckError;
use platform_auth::AuthLayer;
use platform_db::{Database, redact_url};
use platform_events::{Relay, streams};
use platform_kernel::{Parts, Service};
use platform_proto::users::v1::user_service_server::UserServiceServer;

use crate::Users;
use crate::api::UsersApi;
use crate::keys::Keys;
use crate::password::{HashError, Hasher};
use crate::settings::Settings;
use crate::store::MIGRATIONS;

impl Service for Users {
    type Settings = Settings;
    type Command = Command;

    /// Loads keys and prepares the database pool; health turns SERVING once the
    /// database answers and its migrations are applied.
    async fn build(settings: &Settings) -> anyhow::Result<Parts> {
        let (keys, hasher, database) = open(settings, settings.password.max_concurrent).await?;
        let auth = AuthLayer::new(Arc::clone(&keys.verifier));
        let api = UsersApi::new(&database, hasher, keys, settings);
        let mut parts = Parts::grpc(&settings.grpc, UserServiceServer::new(api), auth);
        // Without a broker the outbox still fills; a relay started later sends it all.
        if let Some(client) = settings.events_client().await? {
            let relay = Relay::start(database.clone(), client, streams::USERS, &settings.events);
            // Stopped before the pool closes (stops run in order), after the drain.
            parts = parts.on_stop(relay.stop());
        }
        tracing::info!(
            database = %redact_url(&settings.database.url),
            events = settings.events.enabled(),
            "users service built"
        );
        Ok(parts.with_database(database, &settings.database, MIGRATIONS))
    }

    async fn command(settings: Settings, command: Command) -> anyhow::Result<()> {
        match command {
            Command::Admin {
                command:
                    AdminCommand::Create {
                        email,
                        display_name,
                        password_file,
                    },
            } => create_admin_from_file(&settings, &email, &display_name, &password_file).await,
        }
    }
}

/// What both the service and `users admin` need: the signing keys, a password hasher
/// running at most `hashing` hashes at once, and the database pool.
async fn open(settings: &Settings, hashing: usize) -> anyhow::Result<(Keys, Hasher, Database)> {
    let keys = Keys::load(&settings.auth).context("signing keys")?;
    let params = crate::password::params(settings).map_err(|e| HashError::Argon2(e.to_string()))?;
    let hasher = Hasher::new(params, hashing).await?;
    let database = Database::connect_lazy(&settings.database).context("database")?;
    Ok((keys, hasher, database))
}

/// The operator subcommands of the `users` binary.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Operator commands.
    Admin {
        /// Which one.
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// `users admin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
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

async fn create_admin_from_file(
    settings: &Settings,
    email: &str,
    display_name: &str,
    password_file: &Path,
) -> anyhow::Result<()> {
    let password = if password_file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the password from stdin")?
    } else {
        std::fs::read_to_string(password_file)
            .with_context(|| format!("reading the password file {}", password_file.display()))?
    };
    let password = password.trim_end_matches(['\r', '\n']);
    let user = create_admin(settings, email, display_name, password)
        .await
        .context("creating the admin account")?;
    #[allow(clippy::print_stdout, reason = "the command's output")]
    {
        println!("created admin {} <{}>", user.id, user.email.as_str());
    }
    Ok(())
}

/// Creates an admin account directly in the database: the operator path, since the
/// API never grants the admin role to a new account.
pub async fn create_admin(
    settings: &Settings,
    email: &str,
    display_name: &str,
    password: &str,
) -> Result<crate::domain::User, AdminCommandError> {
    let (keys, hasher, database) = open(settings, 1).await?;
    if settings.database.run_migrations {
        database
            .migrate(MIGRATIONS)
            .await
            .context("applying migrations")?;
    }
    let api = UsersApi::new(&database, hasher, keys, settings);
    let created = api
        .create_account(email, display_name, password, platform_auth::Role::Admin)
        .await;
    database.close().await;
    Ok(created?)
}

/// Why the admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCommandError {
    /// The service's resources could not be opened.
    #[error(transparent)]
    Open(#[from] anyhow::Error),
    /// The account was refused.
    #[error("{}", describe(.0))]
    Refused(#[from] crate::error::ApiError),
}

fn describe(error: &crate::error::ApiError) -> String {
    match error {
        crate::error::ApiError::Check(CheckError::Invalid(violations)) => {
            platform_api::describe(violations)
        }
        other => other.to_string(),
    }
}
