//! Where accounts live: one trait, one SQL implementation for both databases.
//!
//! The trait is implemented once, in SQL, for both PostgreSQL and SQLite
//! (on the pool of either, see `sql.rs`); [`open`] picks the backend from the database URL's scheme. Both
//! are held to the same behaviour by one test suite (`tests/store.rs`) run against each.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::{Database, Migrations};

use crate::domain::{DisplayName, Email, PasswordHash, Role, User, UserId};

static PG_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The users service's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &PG_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account has this email (in any case).
    #[error("email already registered")]
    EmailTaken,
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored row does not read back as a valid account.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Sorts a driver error into unavailable (retryable) or not.
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::EmailTaken,
            e if platform_db::is_unavailable(e) => Self::Unavailable(error),
            _ => Self::Database(error),
        }
    }
}

/// A new account, ready to store.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Its id.
    pub id: UserId,
    /// Its email.
    pub email: Email,
    /// Its display name.
    pub display_name: DisplayName,
    /// Its password hash.
    pub password_hash: PasswordHash,
    /// Its role.
    pub role: Role,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    /// A new display name.
    pub display_name: Option<DisplayName>,
    /// A new password hash.
    pub password_hash: Option<PasswordHash>,
    /// A new role.
    pub role: Option<Role>,
}

/// Account storage.
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new account; [`StoreError::EmailTaken`] when its email is in use.
    async fn create(&self, user: &NewUser) -> Result<User, StoreError>;
    /// The account with `id`.
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The account with `email` and its password hash, for sign-in.
    async fn credentials(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, StoreError>;
    /// Up to `limit` accounts, newest first, older than `after` when given.
    async fn list(&self, limit: u32, after: Option<UserId>) -> Result<Vec<User>, StoreError>;
    /// Applies `changes` to the account with `id`; `None` when there is none.
    async fn update(&self, id: UserId, changes: &UserChanges) -> Result<Option<User>, StoreError>;
    /// Deletes the account with `id`; whether there was one.
    async fn delete(&self, id: UserId) -> Result<bool, StoreError>;
}

/// The store for `database`'s backend.
pub fn open(database: &Database) -> Arc<dyn UserStore> {
    platform_db::open(database, |postgres| postgres, |sqlite| sqlite)
}

/// Builds a [`User`] from stored columns.
pub(crate) fn user_from_columns(
    id: UserId,
    email: &str,
    display_name: &str,
    role: &str,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
) -> Result<User, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("user {id}: invalid {what}"));
    Ok(User {
        id,
        email: Email::parse(email).map_err(|_| corrupt("email"))?,
        display_name: DisplayName::parse(display_name).map_err(|_| corrupt("display name"))?,
        role: crate::domain::role_from_db(role),
        create_time,
        update_time,
    })
}
