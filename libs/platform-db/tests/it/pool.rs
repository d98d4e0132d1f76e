//! The pool against a connection the server has cut: one that sat idle is checked and
//! replaced before a query sees it; one cut while in steady use fails one query as
//! UNAVAILABLE (which callers may retry) and is replaced for the next.

use std::time::Duration;

use platform_db::{Database, DatabaseSettings, PING_AFTER_IDLE, StoreError};
use sqlx::{Connection, PgPool};

/// The server the suite runs against (`TEST_POSTGRES_URL`, else the local default).
fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A pool of one connection, so every query goes through the same one.
fn one_connection() -> PgPool {
    let settings = DatabaseSettings {
        max_connections: 1,
        run_migrations: false,
        ..DatabaseSettings::new(admin_url())
    };
    match Database::connect_lazy(&settings).unwrap() {
        Database::Postgres(pool) => pool,
        Database::Sqlite(_) => panic!("a postgres:// URL opens PostgreSQL"),
    }
}

async fn backend_pid(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

/// Cuts the server side of connection `pid`, as a restart or a failover would.
async fn cut(pid: i32) {
    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(cut, "backend {pid} terminated");
    admin.close().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_that_was_cut_is_replaced_before_a_query_uses_it() {
    let pool = one_connection();
    let first = backend_pid(&pool).await.unwrap();
    cut(first).await;
    tokio::time::sleep(PING_AFTER_IDLE + Duration::from_millis(300)).await;

    let second = backend_pid(&pool)
        .await
        .expect("the query gets a working connection");
    assert_ne!(first, second, "a new connection");
    pool.close().await;
}

#[tokio::test]
async fn a_busy_connection_that_was_cut_fails_one_query_as_unavailable() {
    let pool = one_connection();
    let first = backend_pid(&pool).await.unwrap();
    cut(first).await;
    // Give the server time to close its end, well inside the idle window.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let error = backend_pid(&pool)
        .await
        .expect_err("the cut connection was used without a check");
    assert!(
        matches!(StoreError::from(error), StoreError::Unavailable(_)),
        "a lost connection is UNAVAILABLE, so the caller may retry"
    );
    let second = backend_pid(&pool)
        .await
        .expect("the next query gets a new connection");
    assert_ne!(first, second);
    pool.close().await;
}
