//! TLS to PostgreSQL as the database URL asks for it (`sslmode`, `sslrootcert`): a
//! verified connection works for the service and for `migrate`, and each way TLS can
//! fail is refused with an error that names the cause and never the password.

use std::path::PathBuf;

use platform_db::{Database, DatabaseSettings, DbError, Migrations};
use sqlx::migrate::Migrator;

use crate::pg_server::{Access, PgServer, TestPki};

static MIGRATOR: Migrator = sqlx::migrate!("tests/it/migrations");
const MIGRATIONS: Migrations = Migrations {
    postgres: &MIGRATOR,
    sqlite: &MIGRATOR,
};

/// In every URL, to show it never reaches an error (the servers trust everyone, so
/// it is not checked).
const PASSWORD: &str = "pw-that-must-not-leak";

/// The CA file a client is given: `pem` in a folder of its own.
struct CaFile {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl CaFile {
    fn new(pem: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, pem).unwrap();
        Self { path, _dir: dir }
    }
}

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        max_connections: 2,
        acquire_timeout_ms: 20_000,
        ..DatabaseSettings::new(url)
    }
}

fn verify_full(server: &PgServer, host: &str, ca: &CaFile) -> DatabaseSettings {
    settings(server.url(
        &format!("postgres:{PASSWORD}"),
        host,
        &format!("sslmode=verify-full&sslrootcert={}", ca.path.display()),
    ))
}

/// The error as the operator reads it, checked for the password on the way.
fn message(error: &DbError) -> String {
    let message = error.to_string();
    assert!(
        !message.contains(PASSWORD),
        "the password leaked: {message}"
    );
    assert!(
        !format!("{error:?}").contains(PASSWORD),
        "the password leaked: {error:?}"
    );
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_ca_connects_over_tls() {
    let pki = TestPki::generate("platform test CA");
    let server = PgServer::start(Access::TlsOnly(&pki));
    let ca = CaFile::new(&pki.ca_pem);
    // The certificate names both; rustls checks a DNS name and an IP address alike.
    for host in ["localhost", "127.0.0.1"] {
        let settings = verify_full(&server, host, &ca);
        platform_db::migrate(&settings, MIGRATIONS)
            .await
            .unwrap_or_else(|e| panic!("migrate over verify-full to {host}: {e}"));

        let database = Database::connect_lazy(&settings).unwrap();
        database.ping().await.unwrap();
        let Database::Postgres(pool) = &database else {
            panic!("a postgres:// URL opens PostgreSQL");
        };
        let ssl: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(pool)
                .await
                .unwrap();
        assert!(ssl, "the server sees a TLS connection from {host}");
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM probe")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(applied, 0, "the migration's table exists");
        database.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_from_another_ca() {
    let pki = TestPki::generate("the server's CA");
    let server = PgServer::start(Access::TlsOnly(&pki));
    let other = CaFile::new(&TestPki::generate("some other CA").ca_pem);
    let settings = verify_full(&server, "localhost", &other);

    // The `migrate` command's error ...
    let error = platform_db::migrate(&settings, MIGRATIONS)
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Tls(_)), "{error:?}");
    let said = message(&error);
    assert!(
        said.contains("TLS with the database failed") && said.contains("UnknownIssuer"),
        "the cause is named: {said}"
    );
    assert!(
        said.contains("sslrootcert"),
        "the setting to check is named: {said}"
    );

    // ... and what a running service's readiness check sees.
    let database = Database::connect_lazy(&settings).unwrap();
    let error = database.ping().await.unwrap_err();
    assert!(matches!(error, DbError::Tls(_)), "{error:?}");
    assert!(message(&error).contains("UnknownIssuer"));
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_server_refuses_a_plaintext_connection() {
    let pki = TestPki::generate("platform test CA");
    let server = PgServer::start(Access::TlsOnly(&pki));
    let url = server.url(
        &format!("postgres:{PASSWORD}"),
        "127.0.0.1",
        "sslmode=disable",
    );
    let error = platform_db::migrate(&settings(url), MIGRATIONS)
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::Unreachable(_)), "{error:?}");
    let said = message(&error);
    assert!(
        said.starts_with("cannot connect to the database")
            && said.contains("no pg_hba.conf entry")
            && said.contains("no encryption"),
        "the server says why: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_refuses_a_server_without_tls() {
    let server = PgServer::start(Access::Plaintext);
    let ca = CaFile::new(&TestPki::generate("platform test CA").ca_pem);
    for query in [
        "sslmode=require".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", ca.path.display()),
    ] {
        let url = server.url(&format!("postgres:{PASSWORD}"), "localhost", &query);
        let database = Database::connect_lazy(&settings(url)).unwrap();
        let error = database.ping().await.unwrap_err();
        assert!(matches!(error, DbError::Tls(_)), "{query}: {error:?}");
        let said = message(&error);
        assert!(
            said.contains("server does not support TLS"),
            "{query}: the cause is named: {said}"
        );
        database.close().await;
    }
    // Without TLS asked for, the same server is usable: the refusals above are TLS's.
    let url = server.url("postgres", "localhost", "sslmode=disable");
    let database = Database::connect_lazy(&settings(url)).unwrap();
    database.ping().await.unwrap();
    database.close().await;
}
