//! A throwaway NATS server with JetStream, for tests that need a broker of their own:
//! one they stop and start again (an outage), or whose streams no other test touches.
//!
//! It runs the `nats-server` binary on a free loopback port with its storage in a
//! temporary folder that outlives restarts, so streams and consumers survive a stop.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A `nats-server -js` process owned by the test; killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    storage: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let storage = tempfile::tempdir().expect("a temporary folder for JetStream");
        let mut server = Self {
            port,
            storage,
            child: None,
        };
        server.resume().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its port refuses connections until [`resume`](Self::resume)).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port with the same storage.
    pub async fn resume(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.storage.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is installed");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }
}
