//! The `users` binary as an operator runs it: configuration errors, the admin command,
//! and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use platform_testing::{PASSWORD, TestDatabase, UsersApi};

use crate::common::SERVICE;

const BIN: &str = env!("CARGO_BIN_EXE_users");

/// The binary with an isolated environment: its own database and key, port 0.
fn command(db: &TestDatabase, dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("USERS__GRPC__ADDR", "127.0.0.1:0")
        .env("USERS__ADMIN__ADDR", "127.0.0.1:0")
        .env("USERS__DATABASE__URL", db.url())
        .env("USERS__AUTH__SIGNING_KEY_FILE", dir.join("key.pem"))
        .env("USERS__LOG__FORMAT", "json")
        .current_dir(dir);
    cmd
}

#[test]
fn a_bad_setting_stops_the_process_naming_the_key() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let output = command(&db, dir.path())
        .env("USERS__GRPC__CONCURRENCY_LIMIT", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("grpc.concurrency_limit"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing started: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    let config = dir.path().join("users.toml");
    std::fs::write(&config, "[grpc]\nadress = \"127.0.0.1:1\"\n").unwrap();
    let output = command(&db, dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("adress"));
}

#[tokio::test]
async fn admin_create_makes_an_account_that_can_list_users() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "an operator passphrase\n").unwrap();
    let output = command(&db, dir.path())
        .args([
            "admin",
            "create",
            "--email",
            "Root@Example.com",
            "--password-file",
        ])
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("root@example.com"));
    let combined = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
    assert!(
        !String::from_utf8_lossy(&combined).contains("passphrase"),
        "the password is never printed"
    );

    // The same email again is refused.
    let again = command(&db, dir.path())
        .args([
            "admin",
            "create",
            "--email",
            "root@example.com",
            "--password-file",
        ])
        .arg(&password_file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The account signs in as an admin (trailing newline of the file ignored).
    let mut settings = crate::common::settings(&db, dir.path());
    settings.auth.signing_key_file = dir.path().join("key.pem");
    let app = crate::common::TestApp::start(db, tempfile::tempdir().unwrap(), settings).await;
    let token = app
        .api
        .sign_in("root@example.com", "an operator passphrase")
        .await
        .unwrap();
    app.api
        .list_users(0, "", &token)
        .await
        .expect("admin may list");
    app.stop().await;
}

/// Reads JSON log lines until the "bound" line, and returns the gRPC address.
fn grpc_addr_from_logs(
    stdout: std::process::ChildStdout,
) -> (String, BufReader<std::process::ChildStdout>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "process ended before binding"
        );
        if line.contains("users bound") {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            return (value["grpc.addr"].as_str().unwrap().to_owned(), reader);
        }
    }
}

/// `users healthcheck` as a container runs it: against the configured address.
fn healthcheck(db: &TestDatabase, dir: &std::path::Path, grpc: &str, args: &[&str]) -> i32 {
    let output = command(db, dir)
        .env("USERS__GRPC__ADDR", grpc)
        .arg("healthcheck")
        .args(args)
        .output()
        .unwrap();
    output.status.code().expect("exited")
}

#[tokio::test]
async fn healthcheck_exits_zero_when_serving_and_one_when_nothing_answers() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(&db, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _logs) = grpc_addr_from_logs(child.stdout.take().unwrap());
    let channel = platform_testing::connect(addr.parse().unwrap()).await;
    platform_testing::wait_serving(channel, SERVICE).await;
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };

    // The service is another process: blocking this test's runtime holds up nothing.
    let serving = healthcheck(&db, dir.path(), &addr, &[]);
    // A container listens on 0.0.0.0: the check dials loopback.
    let wildcard = healthcheck(&db, dir.path(), &format!("0.0.0.0:{port}"), &[]);
    // An address on the command line wins over the settings.
    let overridden = healthcheck(&db, dir.path(), &closed, &["--addr", &addr]);
    let down = healthcheck(
        &db,
        dir.path(),
        &addr,
        &["--addr", &closed, "--timeout-ms", "500"],
    );
    assert_eq!(serving, 0, "serving");
    assert_eq!(wildcard, 0, "0.0.0.0 means loopback");
    assert_eq!(overridden, 0, "--addr overrides the settings");
    assert_eq!(down, 1, "nothing listening");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sigterm_lets_the_call_in_flight_finish_and_exits_zero() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    // Expensive hashing makes sign-up a slow call.
    let mut child = command(&db, dir.path())
        .env("USERS__PASSWORD__MEMORY_KIB", "65536")
        .env("USERS__PASSWORD__ITERATIONS", "24")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (addr, mut logs) = grpc_addr_from_logs(child.stdout.take().unwrap());
    let channel = platform_testing::connect(addr.parse().unwrap()).await;
    platform_testing::wait_serving(channel.clone(), SERVICE).await;

    let started = Instant::now();
    let call = tokio::spawn(async move {
        UsersApi::new(channel)
            .create_user("slow@example.com", "Slow", PASSWORD)
            .await
    });
    // Time for the call to reach the other process: it logs only when a call ends.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let answer = call.await.unwrap();
    let took = started.elapsed();
    let user = answer.expect("the call in flight completes");
    assert_eq!(user.email, "slow@example.com");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let mut rest = String::new();
    std::io::Read::read_to_string(&mut logs, &mut rest).unwrap();
    assert!(rest.contains("draining"), "{rest}");
    // The call really was in flight when the signal came.
    let drained_at = rest.find("gRPC server drained").expect("drain logged");
    let finished_at = rest.find("rpc finished").expect("call logged");
    assert!(
        finished_at < drained_at,
        "call finished before the drain ended"
    );
    assert!(
        took > Duration::from_millis(150),
        "call outlived the signal"
    );
}
