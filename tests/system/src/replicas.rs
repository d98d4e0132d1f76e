//! Many replicas of each component as real processes, the way a cluster runs them:
//! every replica on its own loopback address (Linux routes all of 127/8 to `lo`) and
//! its service's one port, so one name and port reach them all; the names
//! (`users.test`, `orders.test`) resolved by a [`TestDns`] the harness runs; one
//! PostgreSQL database per service shared by its replicas; a Redis of its own for the
//! gateways' shared rate limits, which a test may stop and start again.
//!
//! [`Load`] is a small open-model client: requests leave at a fixed rate whatever the
//! answers, through whichever gateways are in its rotation (as a load balancer in
//! front of them would), and every answer that is not a success is counted and kept.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test harness: failing to start is a test failure"
)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform_testing::TestDatabase;
use platform_testing::dns::TestDns;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::processes::Process;
use crate::prometheus;

/// The name every users replica is found by.
pub const USERS_NAME: &str = "users.test";
/// The name every orders replica is found by.
pub const ORDERS_NAME: &str = "orders.test";
/// How often clients resolve the names again.
pub const RESOLVE_EVERY_MS: u64 = 500;
/// The gateways' rate limit per caller: sustained requests a second...
pub const RATE_PER_SECOND: u32 = 10;
/// ... and burst.
pub const RATE_BURST: u32 = 20;

/// What a replica runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The users service.
    Users,
    /// The orders service.
    Orders,
    /// The gateway.
    Gateway,
}

impl Role {
    fn binary(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Orders => "orders",
            Self::Gateway => "gateway",
        }
    }

    /// The loopback addresses of this role's replicas: 127.0.0.11.. for users,
    /// .21.. for orders, .31.. for gateways.
    fn ip(self, index: usize) -> Ipv4Addr {
        let base = match self {
            Self::Users => 11,
            Self::Orders => 21,
            Self::Gateway => 31,
        };
        Ipv4Addr::new(127, 0, 0, base + u8::try_from(index).expect("few replicas"))
    }

    /// The gRPC service whose served calls measure a replica's share.
    fn rpc_service(self) -> &'static str {
        match self {
            Self::Users => "users.v1.UserService",
            Self::Orders => "orders.v1.OrderService",
            Self::Gateway => "",
        }
    }
}

/// One replica: an address, and the process serving on it (none while it is down).
#[derive(Debug)]
pub struct Replica {
    /// What it runs.
    pub role: Role,
    /// Its own loopback address.
    pub ip: Ipv4Addr,
    process: Option<Process>,
    admin: String,
}

impl Replica {
    /// Its admin address (of the process now running).
    pub fn admin(&self) -> &str {
        &self.admin
    }

    /// `role#n (ip)` for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.role.binary(), self.ip)
    }

    /// SIGKILL: no drain, connections cut mid-call.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM, asserting a clean exit (the drain finished within its grace period).
    pub async fn terminate(&mut self) {
        if let Some(mut process) = self.process.take() {
            let status = process.terminate().await;
            assert_eq!(status.code(), Some(0), "{} exits 0", self.label());
        }
    }
}

/// A `redis-server` of the test's own, on a port it chose, with nothing persisted.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port of 127.0.0.1 and waits until it accepts connections.
    pub async fn start() -> Self {
        let port = free_port(&[Ipv4Addr::LOCALHOST]);
        let mut redis = Self { port, child: None };
        redis.run().await;
        redis
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        self.child = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        platform_testing::wait::until(
            &format!("redis on {addr} accepts connections"),
            Duration::from_secs(10),
            async || TcpStream::connect(addr).is_ok(),
        )
        .await;
    }

    /// Stops it (SIGKILL) and waits until the port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on every one of `ips` (each binds its own, so one port serves them all).
pub fn free_port(ips: &[Ipv4Addr]) -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind((ips[0], 0)).expect("binds a loopback address");
        let port = first.local_addr().expect("bound").port();
        let others: Result<Vec<_>, _> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.is_ok() {
            return port;
        }
    }
    panic!("no port free on all of {ips:?}");
}

/// The whole system replicated: users, orders and gateway replicas, the DNS naming
/// them, the databases and the Redis they share.
#[derive(Debug)]
pub struct Cluster {
    /// Users replicas, in address order.
    pub users: Vec<Replica>,
    /// Orders replicas.
    pub orders: Vec<Replica>,
    /// Gateway replicas.
    pub gateways: Vec<Replica>,
    /// The DNS server resolving `users.test` and `orders.test`.
    pub dns: TestDns,
    /// The gateways' shared rate-limit store.
    pub redis: Redis,
    /// An HTTP client for admin pages and setup calls.
    pub client: reqwest::Client,
    ports: HashMap<&'static str, u16>,
    databases: HashMap<&'static str, TestDatabase>,
    dir: tempfile::TempDir,
}

/// How many replicas of each.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Users replicas.
    pub users: usize,
    /// Orders replicas.
    pub orders: usize,
    /// Gateway replicas.
    pub gateways: usize,
}

impl Cluster {
    /// Starts every replica (users first, then orders, then gateways: each waits for
    /// the previous tier only to be quick, not to be correct) and waits until all are
    /// ready. One more address per service stays free for [`Cluster::add_replica`].
    pub async fn start(size: Size) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let ips = |role: Role, n: usize| (0..=n).map(|i| role.ip(i)).collect::<Vec<_>>();
        let ports = HashMap::from([
            ("users", free_port(&ips(Role::Users, size.users))),
            ("orders", free_port(&ips(Role::Orders, size.orders))),
            ("gateway", free_port(&ips(Role::Gateway, size.gateways))),
        ]);
        let users_ips = ips(Role::Users, size.users - 1);
        let orders_ips = ips(Role::Orders, size.orders - 1);
        let dns = TestDns::start(USERS_NAME, &users_ips)
            .await
            .expect("the DNS server starts");
        dns.set_name(ORDERS_NAME, &orders_ips)
            .expect("a valid name");
        let databases = HashMap::from([
            ("users", TestDatabase::postgres().await),
            ("orders", TestDatabase::postgres().await),
        ]);
        let mut cluster = Self {
            users: Vec::new(),
            orders: Vec::new(),
            gateways: Vec::new(),
            dns,
            redis: Redis::start().await,
            client: reqwest::Client::new(),
            ports,
            databases,
            dir,
        };
        for (role, n) in [
            (Role::Users, size.users),
            (Role::Orders, size.orders),
            (Role::Gateway, size.gateways),
        ] {
            // The first replica alone: it migrates the database (and users writes the
            // signing key every replica then shares); the rest start together.
            let mut started = vec![cluster.spawn(role, role.ip(0)).await];
            let rest: Vec<_> = (1..n).map(|i| cluster.spawn(role, role.ip(i))).collect();
            started.extend(futures_util::future::join_all(rest).await);
            *cluster.replicas_mut(role) = started;
        }
        cluster
    }

    fn replicas_mut(&mut self, role: Role) -> &mut Vec<Replica> {
        match role {
            Role::Users => &mut self.users,
            Role::Orders => &mut self.orders,
            Role::Gateway => &mut self.gateways,
        }
    }

    /// The replicas of `role`.
    pub fn replicas(&self, role: Role) -> &[Replica] {
        match role {
            Role::Users => &self.users,
            Role::Orders => &self.orders,
            Role::Gateway => &self.gateways,
        }
    }

    /// The public port every replica of `role` listens on.
    pub fn port(&self, role: Role) -> u16 {
        self.ports[role.binary()]
    }

    /// The base URL of every gateway replica (`http://127.0.0.31:port`).
    pub fn gateway_urls(&self) -> Vec<String> {
        let port = self.port(Role::Gateway);
        self.gateways
            .iter()
            .map(|g| format!("http://{}:{port}", g.ip))
            .collect()
    }

    fn env(&self, role: Role, ip: Ipv4Addr) -> Vec<(String, String)> {
        let public = format!("{ip}:{}", self.port(role));
        let admin = format!("{ip}:0");
        let dns = self.dns.addr().to_string();
        let users_url = format!("http://{USERS_NAME}:{}", self.port(Role::Users));
        let orders_url = format!("http://{ORDERS_NAME}:{}", self.port(Role::Orders));
        let client = [
            ("CLIENT__DNS_SERVER", dns),
            ("CLIENT__RESOLVE_EVERY_MS", RESOLVE_EVERY_MS.to_string()),
        ];
        let mut pairs: Vec<(&str, String)> = vec![("ADMIN__ADDR", admin)];
        match role {
            Role::Users => pairs.extend([
                ("GRPC__ADDR", public),
                ("DATABASE__URL", self.databases["users"].url().to_owned()),
                ("DATABASE__MAX_CONNECTIONS", "4".to_owned()),
                (
                    "AUTH__SIGNING_KEY_FILE",
                    self.dir.path().join("key.pem").display().to_string(),
                ),
                ("PASSWORD__MEMORY_KIB", "1024".to_owned()),
                ("PASSWORD__ITERATIONS", "1".to_owned()),
            ]),
            Role::Orders => {
                pairs.extend([
                    ("GRPC__ADDR", public),
                    ("DATABASE__URL", self.databases["orders"].url().to_owned()),
                    ("DATABASE__MAX_CONNECTIONS", "4".to_owned()),
                    ("USERS__URL", users_url),
                ]);
                pairs.extend(client);
            }
            Role::Gateway => {
                pairs.extend([
                    ("HTTP__ADDR", public),
                    ("USERS__URL", users_url),
                    ("ORDERS__URL", orders_url),
                    ("RATE_LIMIT__PER_SECOND", RATE_PER_SECOND.to_string()),
                    ("RATE_LIMIT__BURST", RATE_BURST.to_string()),
                    ("RATE_LIMIT__REDIS_URL", self.redis.url()),
                ]);
                pairs.extend(client);
            }
        }
        let prefix = role.binary().to_uppercase();
        let mut env: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (format!("{prefix}__{k}"), v))
            .collect();
        env.push((format!("{prefix}__LOG__FORMAT"), "json".to_owned()));
        // Warnings, and the kernel's line naming the bound addresses.
        env.push((
            format!("{prefix}__LOG__FILTER"),
            "warn,platform_kernel=info".to_owned(),
        ));
        env
    }

    /// Starts `role` on `ip` and waits until its `/readyz` answers 200.
    async fn spawn(&self, role: Role, ip: Ipv4Addr) -> Replica {
        let name = role.binary();
        let env = self.env(role, ip);
        let process = Process::spawn(name, &env, self.dir.path());
        let mut replica = Replica {
            role,
            ip,
            process: Some(process),
            admin: String::new(),
        };
        replica.admin = self.wait_bound(&mut replica).await;
        self.wait_ready(&replica).await;
        replica
    }

    async fn wait_bound(&self, replica: &mut Replica) -> String {
        let name = replica.role.binary();
        let process = replica.process.as_mut().expect("running");
        let bound = process.wait_for(&format!("{name} bound")).await;
        bound["admin.addr"]
            .as_str()
            .expect("the bound line names the admin address")
            .to_owned()
    }

    async fn wait_ready(&self, replica: &Replica) {
        let label = replica.label();
        crate::wait_ready(
            &self.client,
            &label,
            &replica.admin,
            Duration::from_secs(30),
        )
        .await;
    }

    /// Starts replica `index` of `role` again on its own address, waiting until ready.
    pub async fn restart(&mut self, role: Role, index: usize) {
        let ip = self.replicas(role)[index].ip;
        let replica = self.spawn(role, ip).await;
        self.replicas_mut(role)[index] = replica;
    }

    /// Starts one more replica of users or orders on the next address, then adds that
    /// address to its name; returns its index.
    pub async fn add_replica(&mut self, role: Role) -> usize {
        let index = self.replicas(role).len();
        let replica = self.spawn(role, role.ip(index)).await;
        self.replicas_mut(role).push(replica);
        let ips: Vec<Ipv4Addr> = self.replicas(role).iter().map(|r| r.ip).collect();
        let name = match role {
            Role::Users => USERS_NAME,
            Role::Orders => ORDERS_NAME,
            Role::Gateway => panic!("gateways are not found by name"),
        };
        self.dns.set_name(name, &ips).expect("a valid name");
        index
    }

    /// The parsed `/metrics` page of `replica`; `None` while it is down.
    pub async fn metrics(&self, replica: &Replica) -> Option<prometheus::Exposition> {
        replica.process.as_ref()?;
        let url = format!("http://{}/metrics", replica.admin);
        let text = self.client.get(&url).send().await.ok()?.text().await.ok()?;
        Some(prometheus::parse(&text).expect("a well-formed metrics page"))
    }

    /// Calls of its API (`rpc_server_requests_total` of its service, every method and
    /// code) the process now on `replica` has served; 0 while it is down.
    pub async fn served(&self, replica: &Replica) -> f64 {
        let Some(page) = self.metrics(replica).await else {
            return 0.0;
        };
        page.find(
            "rpc_server_requests_total",
            &[("rpc_service", replica.role.rpc_service())],
        )
        .iter()
        .map(|s| s.value)
        .sum()
    }

    /// Endpoints of `name` ejected so far (`rpc_client_ejections_total`) by every
    /// running gateway and orders replica.
    pub async fn ejections(&self, name: &str) -> f64 {
        let mut total = 0.0;
        for replica in self.gateways.iter().chain(&self.orders) {
            if let Some(page) = self.metrics(replica).await {
                total += page
                    .find("rpc_client_ejections_total", &[])
                    .iter()
                    .filter(|s| s.labels.get("upstream").is_some_and(|u| u.contains(name)))
                    .map(|s| s.value)
                    .sum::<f64>();
            }
        }
        total
    }

    /// The rate limiter's failed Redis calls (`gateway_rate_limit_backend_errors_total`)
    /// over every gateway.
    pub async fn redis_errors(&self) -> f64 {
        let mut total = 0.0;
        for gateway in &self.gateways {
            if let Some(page) = self.metrics(gateway).await {
                total += page
                    .find("gateway_rate_limit_backend_errors_total", &[])
                    .iter()
                    .map(|s| s.value)
                    .sum::<f64>();
            }
        }
        total
    }

    /// Signs a new account up through gateway 0 (waiting out the per-address limit
    /// on public methods, since every setup call comes from 127.0.0.1).
    pub async fn caller(&self, email: &str) -> Caller {
        let base = &self.gateway_urls()[0];
        let created = self
            .patiently(
                &format!("{base}/v1/users"),
                &json!({ "email": email, "displayName": "Load", "password": crate::PASSWORD }),
            )
            .await;
        let token = self
            .patiently(
                &format!("{base}/v1/auth/token"),
                &json!({ "email": email, "password": crate::PASSWORD }),
            )
            .await;
        Caller {
            id: created["id"].as_str().expect("an id").to_owned(),
            token: token["accessToken"].as_str().expect("a token").to_owned(),
            last_order: Mutex::new(None),
        }
    }

    async fn patiently(&self, url: &str, body: &Value) -> Value {
        for _ in 0..30 {
            let response = self.client.post(url).json(body).send().await;
            let response = response.expect("the gateway answers");
            if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            assert!(
                response.status().is_success(),
                "{url}: {}",
                response.status()
            );
            return response.json().await.expect("JSON");
        }
        panic!("{url} kept answering 429");
    }

    /// The folder the processes run in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A signed-up account the load acts as.
#[derive(Debug)]
pub struct Caller {
    /// Its id.
    pub id: String,
    /// An access token.
    pub token: String,
    last_order: Mutex<Option<String>>,
}

/// Answers counted by the load.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests sent.
    pub sent: u64,
    /// Answered with a 2xx.
    pub ok: u64,
    /// Anything else (an error status, no answer).
    pub failed: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl Tally {
    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            sent: self.sent - earlier.sent,
            ok: self.ok - earlier.ok,
            failed: self.failed - earlier.failed,
            failures: self.failures[earlier.failures.len()..].to_vec(),
        }
    }
}

/// Steady load through the gateways in the rotation: reading an account, creating an
/// order with an `Idempotency-Key`, reading the order, in turn, each caller well under
/// its rate limit.
#[derive(Debug)]
pub struct Load {
    tally: Arc<Mutex<Tally>>,
    rotation: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts sending `per_second` requests a second, spread over `callers` and the
    /// gateways at `gateways`.
    pub fn start(callers: Vec<Caller>, gateways: Vec<String>, per_second: u32) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let rotation = Arc::new(Mutex::new(gateways));
        let in_flight = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        let callers: Arc<Vec<Caller>> = Arc::new(callers);
        let task = tokio::spawn({
            let (tally, rotation, in_flight, stop) = (
                Arc::clone(&tally),
                Arc::clone(&rotation),
                Arc::clone(&in_flight),
                Arc::clone(&stop),
            );
            async move {
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second)));
                let mut requests = JoinSet::new();
                let mut n: usize = 0;
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    while requests.try_join_next().is_some() {}
                    let gateway = {
                        let rotation = lock(&rotation);
                        rotation[n % rotation.len()].clone()
                    };
                    *lock(&in_flight).entry(gateway.clone()).or_insert(0) += 1;
                    lock(&tally).sent += 1;
                    let (http, callers) = (http.clone(), Arc::clone(&callers));
                    let (tally, in_flight) = (Arc::clone(&tally), Arc::clone(&in_flight));
                    requests.spawn(async move {
                        let caller = &callers[n % callers.len()];
                        let step = (n / callers.len()) % 3;
                        let outcome = one_request(&http, &gateway, caller, step).await;
                        let mut tally = lock(&tally);
                        match outcome {
                            Ok(()) => tally.ok += 1,
                            Err(failure) => {
                                tally.failed += 1;
                                if tally.failures.len() < 50 {
                                    tally.failures.push(failure);
                                }
                            }
                        }
                        *lock(&in_flight).entry(gateway).or_insert(1) -= 1;
                    });
                    n += 1;
                }
                while requests.join_next().await.is_some() {}
            }
        });
        Self {
            tally,
            rotation,
            in_flight,
            stop,
            task,
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        lock(&self.tally).clone()
    }

    /// Takes the gateway at `url` out of the rotation and waits until the requests
    /// already sent to it are answered, as a load balancer does before a gateway is
    /// stopped (Kubernetes: the endpoint removed, then the pre-stop sleep).
    pub async fn take_out(&self, url: &str) {
        lock(&self.rotation).retain(|g| g != url);
        platform_testing::wait::until(
            &format!("requests to {url} answered"),
            Duration::from_secs(30),
            async || lock(&self.in_flight).get(url).copied().unwrap_or(0) == 0,
        )
        .await;
    }

    /// Puts the gateway at `url` back into the rotation.
    pub fn put_back(&self, url: &str) {
        let mut rotation = lock(&self.rotation);
        if !rotation.iter().any(|g| g == url) {
            rotation.push(url.to_owned());
        }
    }

    /// Stops sending, waits for every answer, and returns the final counts.
    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let tally = Arc::clone(&self.tally);
        self.task.await.expect("the load task ran");
        lock(&tally).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn one_request(
    http: &reqwest::Client,
    gateway: &str,
    caller: &Caller,
    step: usize,
) -> Result<(), String> {
    let last_order = lock(&caller.last_order).clone();
    let request = match (step, last_order) {
        (1, _) => http
            .post(format!("{gateway}/v1/orders"))
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(
                &json!({ "items": [{ "sku": "BOOK-1", "quantity": 1, "unitPriceCents": "1250" }] }),
            ),
        (2, Some(order)) => http.get(format!("{gateway}/v1/orders/{order}")),
        _ => http.get(format!("{gateway}/v1/users/{}", caller.id)),
    };
    let started = Instant::now();
    let response = request.bearer_auth(&caller.token).send().await;
    let what = format!("{gateway} step {step}");
    let response =
        response.map_err(|e| format!("{what}: no answer after {:?}: {e}", started.elapsed()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{what}: {status} {body}"));
    }
    if step == 1
        && let Some(id) = body["id"].as_str()
    {
        *lock(&caller.last_order) = Some(id.to_owned());
    }
    Ok(())
}

/// The outcome of [`hammer`].
#[derive(Debug, Clone, Copy)]
pub struct Hammered {
    /// Answered 2xx.
    pub admitted: u64,
    /// Answered 429.
    pub limited: u64,
    /// Anything else.
    pub other: u64,
    /// From the first request sent to the last answer.
    pub elapsed: Duration,
}

/// Sends `count` reads of the caller's own account as fast as `concurrency`
/// connections allow, alternating between `gateways`.
pub async fn hammer(
    http: &reqwest::Client,
    gateways: &[String],
    caller: &Caller,
    count: usize,
    concurrency: usize,
) -> Hammered {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (http, gateways, next) = (http.clone(), gateways.to_vec(), Arc::clone(&next));
        let (id, token) = (caller.id.clone(), caller.token.clone());
        workers.spawn(async move {
            let mut codes = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= count {
                    return codes;
                }
                let url = format!("{}/v1/users/{id}", gateways[n % gateways.len()]);
                let response = http.get(url).bearer_auth(&token).send().await;
                codes.push(response.map(|r| r.status().as_u16()).unwrap_or(0));
            }
        });
    }
    let mut result = Hammered {
        admitted: 0,
        limited: 0,
        other: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(codes) = workers.join_next().await {
        for code in codes.expect("a worker ran") {
            match code {
                200..=299 => result.admitted += 1,
                429 => result.limited += 1,
                _ => result.other += 1,
            }
        }
    }
    result.elapsed = started.elapsed();
    result
}
