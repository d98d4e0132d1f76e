//! Rate limits as clients meet them: real gateways on port 0 in front of the real
//! users service, sharing a real `redis-server` that a test may kill and start again.
//!
//! Every gateway here is reached over 127.0.0.1, so "one address" is every request a
//! test sends unless a trusted proxy says otherwise in `X-Forwarded-For`.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::Settings;
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::{TestDatabase, UsersApi, connect, wait_serving};
use reqwest::StatusCode;
use tokio::task::JoinHandle;

/// A public method (`GetJwks`): no upstream work beyond a key lookup.
const PUBLIC: &str = "/v1/auth/jwks";

/// A `redis-server` of this test alone, on a port it keeps across a restart; killed
/// when dropped.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Self {
        // The port is free once the probe listener is dropped; nothing else here
        // binds fixed ports, so it stays free for the server.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once, as a crash would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A component running in a task until its trigger fires.
struct Running {
    addr: SocketAddr,
    admin: SocketAddr,
    trigger: Trigger,
    handle: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.trigger.fire();
        self.handle.abort();
    }
}

/// The users service on port 0 with its own SQLite database and signing key.
struct Users {
    running: Running,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Users {
    async fn start() -> Self {
        let db = TestDatabase::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let settings = users::settings::throwaway(db.url(), dir.path().join("key.pem"));
        let app = users::Application::build(settings).await.unwrap();
        let (addr, admin) = (app.public_addr(), app.admin_addr());
        let (trigger, shutdown) = Shutdown::new();
        let handle = tokio::spawn(async move {
            app.run_until_stopped(shutdown).await.unwrap();
        });
        // Serving once migrated.
        wait_serving(connect(addr).await, "users.v1.UserService").await;
        Self {
            running: Running {
                addr,
                admin,
                trigger,
                handle,
            },
            _db: db,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    /// A new account's access token.
    async fn token(&self, email: &str) -> String {
        UsersApi::new(connect(self.running.addr).await)
            .user(email)
            .await
            .1
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Gateway settings in front of `users` (orders is never called here), `per_second`
/// and `burst` per caller.
fn settings(users: &Users, per_second: u32, burst: u32) -> Settings {
    let mut settings = Settings::default();
    settings.http.addr = loopback();
    settings.admin.addr = loopback();
    settings.users.url = users.url();
    settings.orders.url = users.url();
    settings.rate_limit.per_second = per_second;
    settings.rate_limit.burst = burst;
    settings
}

async fn start_gateway(settings: Settings) -> Running {
    let app = gateway::Application::build(settings).await.unwrap();
    let (addr, admin) = (app.public_addr(), app.admin_addr());
    let (trigger, shutdown) = Shutdown::new();
    let handle = tokio::spawn(async move {
        app.run_until_stopped(shutdown).await.unwrap();
    });
    Running {
        addr,
        admin,
        trigger,
        handle,
    }
}

/// `GET path` on `gateway`, with a token and an `X-Forwarded-For` if given.
async fn get(
    http: &reqwest::Client,
    gateway: &Running,
    path: &str,
    token: Option<&str>,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(format!("http://{}{path}", gateway.addr));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    request.send().await.unwrap()
}

/// `gateway_rate_limit_backend_errors_total` on the gateway's admin port (0 before
/// the first error).
async fn backend_errors(http: &reqwest::Client, gateway: &Running) -> f64 {
    let page = http
        .get(format!("http://{}/metrics", gateway.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    platform_testing::metrics::sum(&page, "gateway_rate_limit_backend_errors_total", &[])
}

/// Sends `n` anonymous requests to the public method, alternating between
/// `gateways`; returns how many were let through and how many got 429.
async fn spend(http: &reqwest::Client, gateways: &[&Running], n: usize) -> (usize, usize) {
    let (mut admitted, mut limited) = (0, 0);
    for i in 0..n {
        let response = get(http, gateways[i % gateways.len()], PUBLIC, None, None).await;
        match response.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    (admitted, limited)
}

#[tokio::test]
async fn replicas_sharing_redis_share_one_budget_and_survive_it_going_away() {
    let users = Users::start().await;
    let mut redis = Redis::start();
    let (per_second, burst) = (2, 10);
    let mut shared = settings(&users, per_second, burst);
    shared.rate_limit.redis_url = redis.url();
    // A machine busy building may stall any task for a while: no false outages here.
    shared.rate_limit.redis_timeout_ms = 2_000;
    let a = start_gateway(shared.clone()).await;
    let b = start_gateway(shared).await;
    let http = reqwest::Client::new();

    // Four times the burst, half through each replica: with a budget per replica the
    // caller would get twice the burst through.
    let started = Instant::now();
    let (admitted, limited) = spend(&http, &[&a, &b], 4 * burst as usize).await;
    let budget = f64::from(burst) + f64::from(per_second) * started.elapsed().as_secs_f64();
    assert!(
        admitted as f64 <= budget * 1.1,
        "{admitted} admitted across both replicas, budget {budget:.1}"
    );
    assert!(
        admitted >= burst as usize,
        "the burst is allowed: {admitted}"
    );
    assert!(limited > 0);

    // Redis gone: the caller, over its budget a moment ago, is served unlimited.
    let errors_before = backend_errors(&http, &a).await;
    redis.kill();
    let (admitted, limited) = spend(&http, &[&a, &b], 4 * burst as usize).await;
    assert_eq!((admitted, limited), (4 * burst as usize, 0));
    assert!(
        backend_errors(&http, &a).await > errors_before,
        "the failed calls are counted"
    );

    // Redis back on its port: the gateways reconnect by themselves and limit again.
    redis.restart();
    platform_testing::wait::until("limiting resumes", Duration::from_secs(15), async || {
        spend(&http, &[&a, &b], burst as usize).await.1 > 0
    })
    .await;
}

#[tokio::test]
async fn without_redis_and_failing_closed_the_answer_is_503() {
    let users = Users::start().await;
    let redis = Redis::start();
    let url = redis.url();
    drop(redis);
    let mut settings = settings(&users, 100, 100);
    settings.rate_limit.redis_url = url;
    settings.rate_limit.fail_open = false;
    let gateway = start_gateway(settings).await;
    let http = reqwest::Client::new();

    let response = get(&http, &gateway, PUBLIC, None, None).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 14);
}

#[tokio::test]
async fn public_methods_are_limited_per_address_whatever_the_token() {
    let users = Users::start().await;
    let ada = users.token("ada@example.com").await;
    let bob = users.token("bob@example.com").await;
    let burst = 4;
    let gateway = start_gateway(settings(&users, 1, burst)).await;
    let http = reqwest::Client::new();

    // Ada spends the address's budget on a public method; Bob's account brings no
    // budget of its own there.
    for _ in 0..burst {
        let response = get(&http, &gateway, PUBLIC, Some(&ada), None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = get(&http, &gateway, PUBLIC, Some(&bob), None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let anonymous = get(&http, &gateway, PUBLIC, None, None).await;
    assert_eq!(anonymous.status(), StatusCode::TOO_MANY_REQUESTS);

    // Methods that need a token keep a budget per account.
    let response = get(&http, &gateway, "/v1/users?page_size=1", Some(&bob), None).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "not an admin, not limited"
    );
}

/// How many of `n` public requests claiming to come from `forwarded_for` get through.
async fn admitted_from(
    http: &reqwest::Client,
    gateway: &Running,
    forwarded_for: &str,
    n: usize,
) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        let response = get(http, gateway, PUBLIC, None, Some(forwarded_for)).await;
        admitted += usize::from(response.status() == StatusCode::OK);
    }
    admitted
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let users = Users::start().await;
    let http = reqwest::Client::new();
    let burst = 3;

    // Not trusted (the default): every claimed address is the peer's one budget.
    let direct = start_gateway(settings(&users, 1, burst)).await;
    assert_eq!(admitted_from(&http, &direct, "198.51.100.1", 4).await, 3);
    assert_eq!(admitted_from(&http, &direct, "198.51.100.2", 1).await, 0);

    // Behind a trusted proxy (the test itself, on 127.0.0.1): each client its own.
    let mut behind = settings(&users, 1, burst);
    behind.rate_limit.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let proxied = start_gateway(behind).await;
    assert_eq!(admitted_from(&http, &proxied, "198.51.100.1", 4).await, 3);
    assert_eq!(admitted_from(&http, &proxied, "198.51.100.2", 1).await, 1);
    // A client cannot escape its budget by writing its own entry on the left.
    assert_eq!(
        admitted_from(&http, &proxied, "203.0.113.5, 198.51.100.1", 1).await,
        0
    );
    // IPv6 clients share a budget per /64.
    assert_eq!(
        admitted_from(&http, &proxied, "2001:db8:1:2::1", 4).await,
        3
    );
    assert_eq!(
        admitted_from(&http, &proxied, "2001:db8:1:2::ffff", 1).await,
        0
    );
    assert_eq!(
        admitted_from(&http, &proxied, "2001:db8:1:3::1", 1).await,
        1
    );
}
