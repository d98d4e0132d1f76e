//! Test support shared by every service's test suites.
//!
//! [`TestDatabase`] gives each test a fresh, empty database: a SQLite file in a
//! temporary folder, or a new PostgreSQL database created on the server named by
//! `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! dropped when the test ends. Tests never share state, so they run in parallel.
//!
//! [`wait`] waits (bounded) for a condition instead of for a fixed time, [`grpc`]
//! connects, authenticates requests, reads what a call ended with and waits on the
//! health protocol, and [`users`] is the users API as tests call it: sign-up, sign-in
//! and one method per RPC. [`metrics`] reads the samples a test looks for on a
//! Prometheus page. [`nats`] runs a throwaway NATS server with JetStream that a test
//! can stop and start again. [`fake_users`] stands in for the users service where
//! another component calls it. With the `dns` feature, [`dns`] is a DNS server on a
//! loopback port answering one name with the addresses the test sets, changed at run
//! time.

#[cfg(feature = "dns")]
pub mod dns;
pub mod fake_users;
pub mod grpc;
pub mod metrics;
pub mod nats;
pub mod users;
pub mod wait;

pub use grpc::{answer, authed, code, connect, refused, wait_serving, wait_status};
pub use users::{PASSWORD, UsersApi};

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

/// The PostgreSQL server used for tests unless `TEST_POSTGRES_URL` names another.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL admin URL tests create their databases with.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A throwaway database; dropping it removes it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite(
        #[allow(dead_code, reason = "kept alive until the database is dropped")] tempfile::TempDir,
    ),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// A new SQLite database file in its own temporary folder.
    pub fn sqlite() -> Self {
        let dir =
            tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary folder: {e}"));
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self {
            url,
            kind: Kind::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database. Panics with a hint when no server answers:
    /// a missing database must fail the suite, never skip it.
    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {admin_url} ({e}); start one (see README: make test) \
                 or set TEST_POSTGRES_URL"
            )
        });
        // `name` is generated above from a UUID: no outside input reaches this statement.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = conn.close().await;
        let options = PgConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|e| panic!("bad TEST_POSTGRES_URL: {e}"))
            .database(&name);
        Self {
            url: options.to_url_lossy().to_string(),
            kind: Kind::Postgres { admin_url, name },
        }
    }

    /// The connection URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL database's name; `None` for SQLite.
    pub fn postgres_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Postgres { name, .. } => Some(name),
            Kind::Sqlite(_) => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Kind::Postgres { admin_url, name } = &self.kind else {
            return;
        };
        let admin_url = admin_url.clone();
        let name = name.clone();
        // Drop may run inside or outside a runtime; a thread of its own works in both.
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Runs each named async test function against both databases.
///
/// Each `fn name(db: TestDatabase)` in scope becomes `sqlite::name` and
/// `postgres::name`, so one suite holds every backend to the same behaviour.
///
/// ```text
/// async fn creates_things(db: TestDatabase) { /* ... */ }
/// platform_testing::database_suite!(creates_things);
/// ```
#[macro_export]
macro_rules! database_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDatabase::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestDatabase::postgres().await).await;
                }
            )*
        }
    };
}
