//! The three components as real processes, the way an operator runs them: their own
//! binaries, configured only through their environment, stopped with SIGTERM.
//!
//! The binaries are found next to the test executable (`target/<profile>/users`, ...,
//! the parent of the `deps` folder it runs from). Cargo builds a package's binaries
//! only for that package's own tests, so building them is left to
//! `cargo test --workspace` (which builds every package's binaries, as `make test`
//! and CI run it) or `cargo build --bins` before `cargo test -p system-tests`.
//!
//! Each process binds port 0 and the harness reads the bound addresses from its JSON
//! log line (`users bound`, `orders bound`, `gateway bound`), so runs
//! never race for ports. Every log line is kept for the test to read.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test harness: failing to start is a test failure"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::edge::{Edge, page};

/// Where the binary `name` of this workspace was built.
pub fn binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo test --workspace` does, or `cargo build --bins`)",
        path.display()
    );
    path
}

/// One running component.
#[derive(Debug)]
pub struct Process {
    /// `users`, `orders` or `gateway`.
    pub name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts binary `name` with only `env` (plus `PATH`) in its environment.
    pub fn spawn(name: &'static str, env: &[(String, String)], dir: &Path) -> Self {
        let mut command = Command::new(binary(name));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(line);
                }
            });
        }
        Self { name, child, lines }
    }

    /// Every line the process has written so far (stdout and stderr).
    pub fn logs(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The JSON log lines so far (lines that are not JSON are skipped).
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits (bounded) for a JSON line whose `message` is `message`.
    pub async fn wait_for(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self
                .json_logs()
                .into_iter()
                .find(|line| line["message"] == message)
            {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before logging {message:?}:\n{}",
                    self.name,
                    self.logs().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never logged {message:?}:\n{}",
                self.name,
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts component `name` (`users`, `orders` or `gateway`) with `settings` in its
    /// environment (each `KEY` as `NAME__KEY`), its `public` port (`grpc` or `http`)
    /// and admin port on port 0 of loopback; returns it with the two addresses it
    /// logged as bound.
    pub async fn launch(
        name: &'static str,
        public: &str,
        config: &Config,
        settings: &[(&str, String)],
        dir: &Path,
    ) -> (Self, String, String) {
        let any_port = "127.0.0.1:0".to_owned();
        let public_key = format!("{}__ADDR", public.to_uppercase());
        let mut settings = settings.to_vec();
        settings.extend([
            (public_key.as_str(), any_port.clone()),
            ("ADMIN__ADDR", any_port),
        ]);
        let env = vars(&name.to_uppercase(), config, &settings);
        let mut process = Self::spawn(name, &env, dir);
        let bound = process.wait_for(&format!("{name} bound")).await;
        let addr = |key: &str| {
            bound[key]
                .as_str()
                .unwrap_or_else(|| panic!("`{key}` in {bound}"))
                .to_owned()
        };
        let (public, admin) = (addr(&format!("{public}.addr")), addr("admin.addr"));
        (process, public, admin)
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("waitable");
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered to {}", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waitable") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failed test must not leave servers behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How the components export spans.
#[derive(Debug, Clone)]
pub enum Export {
    /// No `OTEL_*` variables at all.
    Off,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` set to this URL, in 100 ms batches.
    To(String),
}

/// What a test may set before the components start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Span export.
    pub export: Export,
    /// `log.filter` of every component.
    pub log_filter: String,
    /// `events.nats_url` of users and orders: events through this broker; none when
    /// unset (the embedded default).
    pub nats_url: Option<String>,
}

impl Config {
    /// Exporting as `export`, logging at `info`, without a broker.
    pub fn new(export: Export) -> Self {
        Self {
            export,
            log_filter: "info".to_owned(),
            nats_url: None,
        }
    }
}

/// Users, orders and the gateway, as processes.
#[derive(Debug)]
pub struct Processes {
    /// The users service.
    pub users: Process,
    /// The orders service.
    pub orders: Process,
    /// The gateway.
    pub gateway: Process,
    /// Admin addresses of users, orders and the gateway.
    pub admin: [String; 3],
    edge: Edge,
    _dir: tempfile::TempDir,
}

fn vars(prefix: &str, config: &Config, pairs: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (format!("{prefix}__{k}"), v.clone()))
        .collect();
    env.push((format!("{prefix}__LOG__FORMAT"), "json".to_owned()));
    env.push((format!("{prefix}__LOG__FILTER"), config.log_filter.clone()));
    // The gateway has no events of its own.
    if let Some(url) = config.nats_url.as_ref().filter(|_| prefix != "GATEWAY") {
        env.push((format!("{prefix}__EVENTS__NATS_URL"), url.clone()));
        // Events relayed within a test's patience rather than the idle 200 ms.
        env.push((
            format!("{prefix}__EVENTS__POLL_INTERVAL_MS"),
            "20".to_owned(),
        ));
    }
    if let Export::To(endpoint) = &config.export {
        // OTEL_SERVICE_NAME stays unset: each resource is named after its component.
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint.clone()));
        env.push(("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "100".to_owned()));
    }
    env
}

impl Processes {
    /// Starts users, then orders, then the gateway, and waits until the gateway is
    /// ready.
    pub async fn start(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());

        let (users, users_grpc, users_admin) = Process::launch(
            "users",
            "grpc",
            &config,
            &[
                ("DATABASE__URL", sqlite("users.db")),
                (
                    "AUTH__SIGNING_KEY_FILE",
                    dir.path().join("key.pem").display().to_string(),
                ),
                ("PASSWORD__MEMORY_KIB", "1024".to_owned()),
                ("PASSWORD__ITERATIONS", "1".to_owned()),
            ],
            dir.path(),
        )
        .await;
        let users_url = format!("http://{users_grpc}");
        let (orders, orders_grpc, orders_admin) = Process::launch(
            "orders",
            "grpc",
            &config,
            &[
                ("DATABASE__URL", sqlite("orders.db")),
                ("USERS__URL", users_url.clone()),
            ],
            dir.path(),
        )
        .await;
        let (gateway, http, gateway_admin) = Process::launch(
            "gateway",
            "http",
            &config,
            &[
                ("USERS__URL", users_url),
                ("ORDERS__URL", format!("http://{orders_grpc}")),
                ("RATE_LIMIT__PER_SECOND", "100000".to_owned()),
                ("RATE_LIMIT__BURST", "100000".to_owned()),
            ],
            dir.path(),
        )
        .await;

        let system = Self {
            users,
            orders,
            gateway,
            admin: [users_admin, orders_admin, gateway_admin],
            edge: Edge::new(http),
            _dir: dir,
        };
        system.wait_ready().await;
        system
    }

    /// Waits until every component's `/readyz` answers 200: readiness does not
    /// cascade, so the gateway's alone says nothing of users and orders.
    async fn wait_ready(&self) {
        for (admin, name) in self.admin.iter().zip(["users", "orders", "gateway"]) {
            crate::wait_ready(&self.http, name, admin, Duration::from_secs(30)).await;
        }
    }

    /// The `/metrics` page of admin address `index` (0 users, 1 orders, 2 gateway).
    pub async fn metrics(&self, index: usize) -> String {
        page(&self.http, &format!("http://{}/metrics", self.admin[index])).await
    }

    /// Every log line of the three processes.
    pub fn all_logs(&self) -> Vec<String> {
        [&self.users, &self.orders, &self.gateway]
            .into_iter()
            .flat_map(Process::logs)
            .collect()
    }

    /// SIGTERM to all three (gateway first), asserting each exits 0.
    pub async fn stop(mut self) -> Vec<String> {
        for process in [&mut self.gateway, &mut self.orders, &mut self.users] {
            if let Ok(Some(_)) = process.child.try_wait() {
                continue;
            }
            let status = process.terminate().await;
            assert_eq!(status.code(), Some(0), "{} exits 0", process.name);
        }
        self.all_logs()
    }
}

impl std::ops::Deref for Processes {
    type Target = Edge;

    /// The gateway's public port, where tests send their requests.
    fn deref(&self) -> &Edge {
        &self.edge
    }
}
