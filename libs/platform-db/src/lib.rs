//! Database connections for services that keep their data in PostgreSQL (production)
//! or SQLite (the embedded default), chosen by the URL scheme.
//!
//! A service keeps one storage trait with one implementation per backend; this crate
//! gives it the pool for the configured backend ([`Database`]), runs the backend's
//! migrations, and answers readiness pings. Pools connect lazily, so a service can start,
//! report NOT_SERVING, and become ready by itself once its database appears.
//!
//! [`backend`] lets a service write its store once for both backends and [`open`] it
//! for the configured one, its operations failing with one [`StoreError`]; [`observe`]
//! gives every query a client span ([`query_span`]) and the pool its Prometheus gauges.

pub mod backend;
pub mod observe;

pub use backend::{Backend, Column, NotAUuid, begin, commit, fetch_page, now, open, rollback};
pub use observe::{TraceQuery, query_span};

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// The `[database]` section of a service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Apply the service's migrations at start. Turn off where a deployment runs them
    /// as a separate step.
    #[serde(default = "default_true")]
    pub run_migrations: bool,
    /// Upper bound of the connection pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a query waits for a free connection before it fails with UNAVAILABLE.
    #[serde(default = "default_acquire_timeout_ms")]
    pub acquire_timeout_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_max_connections() -> u32 {
    10
}
fn default_acquire_timeout_ms() -> u64 {
    3_000
}

impl DatabaseSettings {
    /// Settings for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            run_migrations: true,
            max_connections: default_max_connections(),
            acquire_timeout_ms: default_acquire_timeout_ms(),
        }
    }
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL's scheme is neither PostgreSQL nor SQLite.
    #[error("unsupported database URL scheme in `{0}`: expected postgres:// or sqlite://")]
    UnsupportedScheme(String),
    /// The URL does not parse for its backend.
    #[error("invalid database URL `{url}`: {source}")]
    InvalidUrl {
        /// The URL with any password hidden.
        url: String,
        /// The parser's complaint.
        source: sqlx::Error,
    },
    /// The folder for a SQLite file, or the file itself, could not be created.
    #[error("cannot create the database folder or file {path}: {source}")]
    Folder {
        /// The folder or file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The CA certificate file named by the URL's `sslrootcert` cannot be used.
    #[error("cannot use the CA certificate {path} (sslrootcert in the database URL): {reason}")]
    RootCert {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS with the database failed: its certificate is not signed by a trusted CA or
    /// does not name the URL's host, or it does not offer the TLS the URL's `sslmode`
    /// requires.
    #[error("TLS with the database failed: {}; check sslmode and sslrootcert in the database URL", tls_cause(.0))]
    Tls(sqlx::Error),
    /// Migrations failed.
    #[error("migrations failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The database did not answer, or refused the connection.
    #[error("cannot connect to the database: {0}")]
    Unreachable(sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        if is_tls(&error) {
            Self::Tls(error)
        } else {
            Self::Unreachable(error)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    /// Migrations that cannot even connect are a connection problem, reported as one.
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(error)
                if is_tls(&error) || is_unavailable(&error) || is_refused(&error) =>
            {
                Self::from(error)
            }
            error => Self::Migrate(error),
        }
    }
}

/// Whether `error` is TLS failing: sqlx's own TLS errors (no TLS offered, an unreadable
/// certificate), or a handshake that rustls refused, which sqlx hands on as an I/O
/// error wrapping rustls's.
fn is_tls(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// Whether the server refused the connection: SQLSTATE class 28, invalid
/// authorization (no `pg_hba.conf` entry, for one without TLS on a TLS-only server; a
/// wrong password).
fn is_refused(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|code| code.starts_with("28")))
}

/// What went wrong in a TLS error, without sqlx's generic prefix.
fn tls_cause(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Tls(cause) => cause.to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// A pool for the configured backend.
#[derive(Debug, Clone)]
pub enum Database {
    /// PostgreSQL.
    Postgres(PgPool),
    /// SQLite, bundled.
    Sqlite(SqlitePool),
}

/// Each backend's migrations of one service.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Applied on PostgreSQL.
    pub postgres: &'static Migrator,
    /// Applied on SQLite.
    pub sqlite: &'static Migrator,
}

/// The [`Migrations`] of the calling crate, embedded in its binary: the folders
/// `migrations/postgres` and `migrations/sqlite` beside its manifest.
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::Migrations {
            postgres: {
                static MIGRATOR: ::sqlx::migrate::Migrator =
                    ::sqlx::migrate!("migrations/postgres");
                &MIGRATOR
            },
            sqlite: {
                static MIGRATOR: ::sqlx::migrate::Migrator = ::sqlx::migrate!("migrations/sqlite");
                &MIGRATOR
            },
        }
    };
}

/// How long a pooled connection may sit idle and still be handed to a query without a
/// ping first.
///
/// sqlx's default pings every connection before every query, a whole extra round
/// trip per read. A connection in steady use is known to work: its last query (and the
/// check sqlx makes when one is returned to the pool) just went through it. One that
/// has been idle for a while may have been cut (a database restart, a failover, a
/// middlebox that drops quiet connections), so it is pinged and, if dead, replaced
/// before the query sees it.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The check before a pooled connection is used: see [`PING_AFTER_IDLE`].
async fn ping_if_idle<C: sqlx::Connection>(
    conn: &mut C,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> Result<bool, sqlx::Error> {
    if meta.idle_for >= PING_AFTER_IDLE {
        conn.ping().await?;
    }
    Ok(true)
}

impl Database {
    /// Opens a lazily connecting pool for `settings.url`. Nothing is dialled yet; a
    /// SQLite file's folder is created so the first connection can create the file.
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Self, DbError> {
        let url = settings.url.as_str();
        let acquire_timeout = Duration::from_millis(settings.acquire_timeout_ms);
        let invalid = |source| DbError::InvalidUrl {
            url: redact_url(url),
            source,
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(invalid)?;
            if let Some(path) = root_cert_file(url) {
                check_root_cert(&path)?;
            }
            let pool = PgPoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                .connect_lazy_with(options);
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .create_if_missing(true)
                .foreign_keys(true)
                // WAL lets readers proceed while one writer writes; the busy timeout makes
                // concurrent writers wait their turn instead of failing at once.
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5));
            let file = options.get_filename();
            if let Some(folder) = file.parent() {
                create_folder(folder)?;
            }
            if !url.contains(":memory:") && !url.contains("mode=memory") {
                create_private_file(file)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.max_connections)
                .acquire_timeout(acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
                .connect_lazy_with(options);
            Ok(Self::Sqlite(pool))
        } else {
            Err(DbError::UnsupportedScheme(redact_url(url)))
        }
    }

    /// `postgresql` or `sqlite`, as OpenTelemetry's `db.system` spells them.
    pub fn system(&self) -> &'static str {
        match self {
            Self::Postgres(_) => observe::POSTGRESQL,
            Self::Sqlite(_) => observe::SQLITE,
        }
    }

    /// Applies the backend's migrations; safe to run from several replicas at once
    /// (PostgreSQL takes an advisory lock).
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => migrations.postgres.run(pool).await?,
            Self::Sqlite(pool) => migrations.sqlite.run(pool).await?,
        }
        Ok(())
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Self::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Applies `migrations` to the database of `settings` and closes the pool: the
/// `migrate` subcommand (a Kubernetes init container, a one-shot compose service).
pub async fn migrate(settings: &DatabaseSettings, migrations: Migrations) -> Result<(), DbError> {
    let database = Database::connect_lazy(settings)?;
    let result = database.migrate(migrations).await;
    database.close().await;
    result
}

/// A readiness check of one service's database: applies the migrations as soon as the
/// database answers (when asked to), then pings it. Clones share the state.
#[derive(Debug, Clone)]
pub struct DatabaseCheck {
    database: Database,
    migrations: Migrations,
    migrated: Arc<AtomicBool>,
}

impl DatabaseCheck {
    /// Checks `database`; with `run_migrations`, applies `migrations` first.
    pub fn new(database: Database, migrations: Migrations, run_migrations: bool) -> Self {
        Self {
            database,
            migrations,
            migrated: Arc::new(AtomicBool::new(!run_migrations)),
        }
    }

    /// Whether the database is usable now; logs why not.
    pub async fn run(&self) -> bool {
        if !self.migrated.load(Ordering::SeqCst) {
            return match self.database.migrate(self.migrations).await {
                Ok(()) => {
                    tracing::info!(db.system = self.database.system(), "migrations applied");
                    self.migrated.store(true, Ordering::SeqCst);
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot apply migrations yet");
                    false
                }
            };
        }
        match self.database.ping().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "database check failed");
                false
            }
        }
    }
}

/// Why an operation of a service's store failed, sorted by what its caller does about
/// it: retry later ([`StoreError::Unavailable`]) or treat it as a fault of the server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored row does not read back as a valid value of the service's domain.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

/// Whether `error` means the database is unreachable or refusing work for now (so a
/// caller should see UNAVAILABLE and may retry), as opposed to a fault in the query or
/// the data.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| unavailable_code(&code)),
        _ => false,
    }
}

/// SQLSTATE classes and codes (PostgreSQL) and result codes (SQLite) of a database
/// that is down, restarting, overloaded, or not accepting connections.
fn unavailable_code(code: &str) -> bool {
    const PG_CLASSES: [&str; 4] = [
        "08", // connection exception
        "53", // insufficient resources (too many connections, disk full)
        "57", // operator intervention (shutdown, cannot connect now)
        "58", // system error
    ];
    const PG_CODES: [&str; 2] = [
        "55000", // database is not currently accepting connections
        "3D000", // database does not exist (yet)
    ];
    if code.len() == 5 {
        return PG_CLASSES.iter().any(|class| code.starts_with(class)) || PG_CODES.contains(&code);
    }
    // SQLite primary result codes (the low byte of extended ones): BUSY, LOCKED,
    // IOERR, FULL, CANTOPEN.
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14))
}

fn create_folder(folder: &Path) -> Result<(), DbError> {
    if folder.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(folder).map_err(|source| DbError::Folder {
        path: folder.display().to_string(),
        source,
    })
}

/// Creates the SQLite file `path`, if it does not exist yet, readable and writable by
/// this user only (0600): it holds password hashes and personal data, and the process
/// umask would usually leave it world-readable. SQLite gives its `-wal` and `-shm`
/// files the database file's permissions.
fn create_private_file(path: &Path) -> Result<(), DbError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(DbError::Folder {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The file the URL's `sslrootcert` (or its aliases `ssl-root-cert`, `ssl-ca`) names,
/// as sqlx reads it: the last one wins; an inline PEM certificate is not a file.
fn root_cert_file(url: &str) -> Option<PathBuf> {
    let (_, query) = url.split_once('?')?;
    let value = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .rfind(|(key, _)| matches!(*key, "sslrootcert" | "ssl-root-cert" | "ssl-ca"))?
        .1
        .replace('+', " ");
    let value = percent_encoding::percent_decode_str(&value).decode_utf8_lossy();
    if value.trim_start().starts_with("-----BEGIN") {
        return None;
    }
    Some(PathBuf::from(value.into_owned()))
}

/// Reads the CA file once at start, so that a missing or wrong file is named at once
/// rather than surfacing as a bare I/O error on every connection attempt. sqlx reads it
/// again for each new connection, so a renewed file is picked up without a restart.
fn check_root_cert(path: &Path) -> Result<(), DbError> {
    let problem = |reason: String| DbError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    if !pem
        .windows(CERTIFICATE_PEM.len())
        .any(|window| window == CERTIFICATE_PEM)
    {
        return Err(problem(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(())
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// `url` with its password, if any, replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    if user.len() == userinfo.len() {
        return url.to_owned();
    }
    format!("{scheme}://{user}:***@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_files_are_private_to_the_service_user() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/users.db");
        let settings = DatabaseSettings::new(format!("sqlite://{}", path.display()));
        let database = Database::connect_lazy(&settings).unwrap();
        let Database::Sqlite(pool) = &database else {
            panic!("a sqlite:// URL opens SQLite");
        };
        // A write, so that SQLite creates its write-ahead log beside the file.
        sqlx::query("CREATE TABLE t (x)")
            .execute(pool)
            .await
            .unwrap();
        for file in [path.clone(), path.with_extension("db-wal")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
        database.close().await;
    }

    #[test]
    fn classifies_unavailable_codes() {
        assert!(unavailable_code("08006"));
        assert!(unavailable_code("57P01"));
        assert!(unavailable_code("55000"));
        assert!(unavailable_code("5"));
        assert!(unavailable_code("517"), "SQLITE_BUSY_SNAPSHOT");
        assert!(!unavailable_code("23505"), "unique violation is not");
        assert!(!unavailable_code("42601"), "syntax error is not");
        assert!(!unavailable_code("19"), "SQLITE_CONSTRAINT is not");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/users"),
            "postgres://app:***@db:5432/users"
        );
        assert_eq!(
            redact_url("postgres://app@db/users"),
            "postgres://app@db/users"
        );
        assert_eq!(
            redact_url("sqlite://data/users.db"),
            "sqlite://data/users.db"
        );
        assert_eq!(redact_url("postgres://a:p@ss@h/d"), "postgres://a:***@h/d");
    }

    #[test]
    fn rejects_other_schemes_without_leaking_the_password() {
        let err =
            Database::connect_lazy(&DatabaseSettings::new("mysql://root:pw@h/db")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unsupported"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }

    #[test]
    fn finds_the_ca_file_as_sqlx_reads_the_url() {
        let file = |url: &str| root_cert_file(url).map(|p| p.display().to_string());
        assert_eq!(
            file("postgres://a@h/d?sslmode=verify-full&sslrootcert=/etc/ca.crt"),
            Some("/etc/ca.crt".to_owned())
        );
        assert_eq!(
            file("postgres://a@h/d?ssl-ca=%2Fetc%2Fmy+ca.crt"),
            Some("/etc/my ca.crt".to_owned())
        );
        assert_eq!(
            file("postgres://a@h/d?sslrootcert=/a.crt&ssl-root-cert=/b.crt"),
            Some("/b.crt".to_owned()),
            "the last one wins"
        );
        assert_eq!(file("postgres://a@h/d?sslmode=require"), None);
        assert_eq!(
            file("postgres://a@h/d?sslrootcert=-----BEGIN%20CERTIFICATE-----"),
            None,
            "inline PEM is not a file"
        );
    }

    #[test]
    fn a_missing_or_wrong_ca_file_is_named_before_anything_connects() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.key");
        std::fs::write(&not_pem, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let missing = dir.path().join("missing/ca.crt");
        for (path, why) in [(&missing, "No such file"), (&not_pem, "no PEM certificate")] {
            let url = format!(
                "postgres://app:s3cret@db/users?sslmode=verify-full&sslrootcert={}",
                path.display()
            );
            let error = Database::connect_lazy(&DatabaseSettings::new(url)).unwrap_err();
            let msg = error.to_string();
            assert!(matches!(error, DbError::RootCert { .. }), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(msg.contains("sslrootcert") && msg.contains(why), "{msg}");
            assert!(!msg.contains("s3cret"), "{msg}");
        }
    }

    #[tokio::test]
    async fn sqlite_file_and_folder_are_created_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/folder/app.db");
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect_lazy(&DatabaseSettings::new(url)).unwrap();
        assert_eq!(db.system(), "sqlite");
        db.ping().await.unwrap();
        assert!(path.exists());
        db.close().await;
    }
}
