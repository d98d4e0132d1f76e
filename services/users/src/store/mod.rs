//! Where accounts and sessions live: two traits, each with one SQL implementation for
//! both databases.
//!
//! [`UserStore`] holds accounts (`sql.rs`), [`SessionStore`] the refresh-token families
//! and the failed sign-in counters (`sessions.rs`). Each is implemented once, in SQL,
//! for both PostgreSQL and SQLite (on the pool of either); [`open`] and
//! [`open_sessions`] pick the backend from the database URL's scheme. Both backends
//! are held to the same behaviour by one test suite (`tests/it/store.rs`) run against
//! each.

mod sessions;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::{Database, Migrations};

use crate::domain::{DisplayName, Email, PasswordHash, Role, User, UserId};
use crate::sessions::RefreshTokenHash;

/// The users service's migrations for each backend.
pub const MIGRATIONS: Migrations = platform_db::migrations!();

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another account has this email (in any case).
    #[error("email already registered")]
    EmailTaken,
    /// The database failed, or a row does not read back as a valid account.
    #[error(transparent)]
    Db(#[from] platform_db::StoreError),
}

impl From<sqlx::Error> for StoreError {
    /// A unique violation is taken for the email's: every other unique key is one the
    /// service generates, or one its statements write with `ON CONFLICT`.
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::EmailTaken,
            _ => Self::Db(error.into()),
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
    /// The account with `id` and its password hash, to check a current password.
    async fn credentials_by_id(
        &self,
        id: UserId,
    ) -> Result<Option<(User, PasswordHash)>, StoreError>;
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

/// The session store for `database`'s backend.
pub fn open_sessions(database: &Database) -> Arc<dyn SessionStore> {
    platform_db::open(database, |postgres| postgres, |sqlite| sqlite)
}

/// A refresh token to store. Times are Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    /// What is kept of the token.
    pub hash: RefreshTokenHash,
    /// When it is issued.
    pub now: i64,
    /// When it stops being accepted.
    pub expires_at: i64,
}

/// What presenting a refresh token for rotation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is retired and its successor stored, for this account.
    Rotated(UserId),
    /// The token had already been exchanged: its family of this account is now
    /// revoked, successors included.
    Reused(UserId),
    /// Unknown, expired, or of a revoked family: nothing changed.
    Refused,
}

/// The failed sign-ins recorded for one email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInFailures {
    /// Consecutive failures.
    pub failures: u64,
    /// When the last one happened, in Unix seconds.
    pub last_failure_at: i64,
}

/// Refresh-token families and failed sign-in counters.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Starts a family for `user` (a sign-in) with its first token.
    async fn start_family(&self, user: UserId, first: &NewRefreshToken) -> Result<(), StoreError>;
    /// Exchanges `presented` for `next` in one transaction: only a live token of a
    /// live family is retired, by a conditional update, so of two concurrent
    /// exchanges of one token exactly one succeeds. A token already retired revokes
    /// its family.
    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &NewRefreshToken,
    ) -> Result<Rotation, StoreError>;
    /// Revokes the family `token` belongs to; whether a live one was found.
    async fn revoke_family_of(
        &self,
        token: &RefreshTokenHash,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Revokes every live family of `user`; how many there were.
    async fn revoke_all(&self, user: UserId, now: i64) -> Result<u64, StoreError>;
    /// The failures recorded for `email`.
    async fn sign_in_failures(&self, email: &Email) -> Result<Option<SignInFailures>, StoreError>;
    /// Counts one more failure for `email` at `now`, starting again from one when the
    /// previous failure is older than `forget_before`; the count after it.
    async fn record_sign_in_failure(
        &self,
        email: &Email,
        now: i64,
        forget_before: i64,
    ) -> Result<SignInFailures, StoreError>;
    /// Forgets the failures of `email` (a successful sign-in).
    async fn clear_sign_in_failures(&self, email: &Email) -> Result<(), StoreError>;
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
    let corrupt =
        |what: &str| platform_db::StoreError::Corrupt(format!("user {id}: invalid {what}"));
    Ok(User {
        id,
        email: Email::parse(email).map_err(|_| corrupt("email"))?,
        display_name: DisplayName::parse(display_name).map_err(|_| corrupt("display name"))?,
        role: crate::domain::role_from_db(role),
        create_time,
        update_time,
    })
}
