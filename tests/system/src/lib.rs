//! The whole system on loopback, for cross-service tests and benchmarks.
//!
//! [`System::start`] runs users, orders and the gateway in this process, each on port
//! 0 with its own SQLite database, plus a stand-in "team" backend (`inventory.v1`) that
//! the gateway only knows from a descriptor set file named in its configuration.
//!
//! Tests reach the gateway through [`edge::Edge`], which both [`System`] and
//! [`processes::Processes`] dereference to.
//!
//! [`processes`] runs the three components as real processes instead, [`replicas`]
//! runs several of each behind DNS names, [`otlp`] is a trace receiver for them to
//! export to, and [`prometheus`] reads `/metrics` pages strictly.

#![allow(
    clippy::expect_used,
    reason = "a test harness: failing to start is a test failure"
)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::TestDatabase;
use tokio::task::JoinHandle;

use crate::edge::Edge;

pub mod edge;
pub mod otlp;
pub mod processes;
pub mod prometheus;
pub mod replicas;

/// Code generated from the test-only inventory proto.
pub mod inventory {
    #![allow(
        missing_docs,
        unreachable_pub,
        clippy::all,
        missing_debug_implementations
    )]
    tonic::include_proto!("inventory.v1");
}

/// `google.api.HttpBody` as the inventory backend sees it (its `extensions` unused).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpBody {
    /// The media type of `data`.
    #[prost(string, tag = "1")]
    pub content_type: String,
    /// The raw bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// The descriptor set of the inventory proto (imports and source info included), as a
/// team would produce with `buf build -o`.
pub const INVENTORY_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/inventory.binpb"));

pub use platform_testing::PASSWORD;

/// A component running in a task, stopped through its shutdown trigger.
#[derive(Debug)]
pub struct Running {
    trigger: Trigger,
    handle: JoinHandle<Result<(), String>>,
    /// Its gRPC or HTTP address.
    pub addr: SocketAddr,
    /// Its admin address, when it has one.
    pub admin: Option<SocketAddr>,
}

impl Running {
    /// Fires the shutdown and waits (bounded) for a clean stop.
    pub async fn stop(self) {
        self.trigger.fire();
        let result = tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("stops within 15 s")
            .expect("task ran");
        result.expect("clean stop");
    }
}

fn spawn<F>(addr: SocketAddr, admin: Option<SocketAddr>, run: impl FnOnce(Shutdown) -> F) -> Running
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let (trigger, shutdown) = Shutdown::new();
    Running {
        trigger,
        handle: tokio::spawn(run(shutdown)),
        addr,
        admin,
    }
}

/// Starts the service `S` (users, orders or the gateway) on port 0.
pub async fn start<S: platform_kernel::Service>(settings: S::Settings) -> Running {
    let app = platform_kernel::Application::<S>::build(settings)
        .await
        .expect("the service builds");
    let (addr, admin) = (app.public_addr(), app.admin_addr());
    spawn(addr, Some(admin), |s| async move {
        app.run_until_stopped(s).await.map_err(|e| e.to_string())
    })
}

/// The stand-in team backend: every SKU has 42 in stock; reserving subtracts.
#[derive(Debug, Default)]
struct Inventory;

#[tonic::async_trait]
impl inventory::inventory_service_server::InventoryService for Inventory {
    async fn get_item(
        &self,
        request: tonic::Request<inventory::GetItemRequest>,
    ) -> Result<tonic::Response<inventory::Item>, tonic::Status> {
        Ok(tonic::Response::new(inventory::Item {
            sku: request.into_inner().sku,
            in_stock: 42,
            availability: inventory::Availability::InStock.into(),
            ..inventory::Item::default()
        }))
    }

    async fn reserve_item(
        &self,
        request: tonic::Request<inventory::ReserveItemRequest>,
    ) -> Result<tonic::Response<inventory::Item>, tonic::Status> {
        let request = request.into_inner();
        RESERVATIONS
            .lock()
            .expect("not poisoned")
            .push(request.sku.clone());
        if request.quantity > 42 {
            return Err(tonic::Status::failed_precondition("not enough stock"));
        }
        Ok(tonic::Response::new(inventory::Item {
            sku: request.sku,
            in_stock: 42 - i64::from(request.quantity),
            ..inventory::Item::default()
        }))
    }

    type WatchItemStream = ItemStream;

    async fn watch_item(
        &self,
        request: tonic::Request<inventory::WatchItemRequest>,
    ) -> Result<tonic::Response<ItemStream>, tonic::Status> {
        let request = request.into_inner();
        let interval = Duration::from_millis(u64::try_from(request.interval_ms).unwrap_or(0));
        let guard = std::sync::Arc::new(WatchGuard::new(&request.sku));
        let sku = request.sku.clone();
        let updates = (0..request.count).map(move |n| {
            Ok(inventory::Item {
                sku: sku.clone(),
                in_stock: 42 - i64::from(n),
                ..inventory::Item::default()
            })
        });
        let end = (request.fail_with != 0).then(|| {
            Err(tonic::Status::new(
                tonic::Code::from_i32(request.fail_with),
                "the watch ended",
            ))
        });
        let items = futures_util::stream::iter(updates.chain(end)).then(move |item| {
            let _open = std::sync::Arc::clone(&guard);
            async move {
                tokio::time::sleep(interval).await;
                item
            }
        });
        Ok(tonic::Response::new(Box::pin(items)))
    }

    async fn export_item(
        &self,
        request: tonic::Request<inventory::ExportItemRequest>,
    ) -> Result<tonic::Response<HttpBody>, tonic::Status> {
        let request = request.into_inner();
        Ok(tonic::Response::new(HttpBody {
            content_type: "text/csv".to_owned(),
            data: csv(&request.sku, request.rows).into_bytes(),
        }))
    }

    type DownloadItemStream = DownloadStream;

    async fn download_item(
        &self,
        request: tonic::Request<inventory::DownloadItemRequest>,
    ) -> Result<tonic::Response<DownloadStream>, tonic::Status> {
        let request = request.into_inner();
        let fail =
            |code: i32| tonic::Status::new(tonic::Code::from_i32(code), "the download failed");
        if request.fail_first {
            return Err(fail(request.fail_with));
        }
        let sku = request.sku.clone();
        let chunks = (0..request.count).map(move |n| {
            Ok(HttpBody {
                // Only the first message's type counts.
                content_type: if n == 0 { "text/csv" } else { "text/plain" }.to_owned(),
                data: format!("{sku},{n}\n").into_bytes(),
            })
        });
        let end = (request.fail_with != 0).then(|| Err(fail(request.fail_with)));
        let chunks = futures_util::stream::iter(chunks.chain(end)).then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            chunk
        });
        Ok(tonic::Response::new(Box::pin(chunks)))
    }

    async fn upload_picture(
        &self,
        request: tonic::Request<inventory::UploadPictureRequest>,
    ) -> Result<tonic::Response<inventory::Picture>, tonic::Status> {
        let request = request.into_inner();
        let picture = request.picture.unwrap_or_default();
        Ok(tonic::Response::new(inventory::Picture {
            sku: request.sku,
            content_type: picture.content_type,
            size: i64::try_from(picture.data.len()).unwrap_or(i64::MAX),
        }))
    }

    async fn echo(
        &self,
        request: tonic::Request<HttpBody>,
    ) -> Result<tonic::Response<HttpBody>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }

    async fn inspect(
        &self,
        request: tonic::Request<inventory::InspectRequest>,
    ) -> Result<tonic::Response<inventory::InspectResponse>, tonic::Status> {
        let headers = request.metadata().clone().into_headers();
        let fail_with = request.get_ref().fail_with;
        if fail_with != 0 {
            let mut trailers = tonic::metadata::MetadataMap::new();
            trailers.insert("x-checksum", "abc123".parse().expect("ASCII"));
            trailers.insert("x-internal", "do-not-leak".parse().expect("ASCII"));
            return Err(tonic::Status::with_metadata(
                tonic::Code::from_i32(fail_with),
                "inspection refused",
                trailers,
            ));
        }
        let mut metadata = std::collections::HashMap::new();
        for key in headers.keys() {
            let values: Vec<&str> = headers
                .get_all(key)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            metadata.insert(key.as_str().to_owned(), values.join(", "));
        }
        let mut response = tonic::Response::new(inventory::InspectResponse { metadata });
        response
            .metadata_mut()
            .insert("x-stock-source", "warehouse-7".parse().expect("ASCII"));
        response
            .metadata_mut()
            .insert("x-internal", "do-not-leak".parse().expect("ASCII"));
        Ok(response)
    }

    async fn count_items(
        &self,
        _request: tonic::Request<tonic::Streaming<inventory::Item>>,
    ) -> Result<tonic::Response<inventory::Item>, tonic::Status> {
        Err(tonic::Status::unimplemented("not served"))
    }
}

/// The SKU of every `ReserveItem` call the inventory backend received.
static RESERVATIONS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// How many `ReserveItem` calls of `sku` reached the inventory backend.
pub fn reservations(sku: &str) -> usize {
    let calls = RESERVATIONS.lock().expect("not poisoned");
    calls.iter().filter(|s| *s == sku).count()
}

/// Watches of each SKU that the inventory backend is serving now.
static OPEN_WATCHES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// How many `WatchItem` calls of `sku` the inventory backend is serving now: a call
/// ends when its stream is dropped, which is what cancelling it upstream does.
pub fn open_watches(sku: &str) -> usize {
    let open = OPEN_WATCHES.lock().expect("not poisoned");
    open.iter().filter(|s| *s == sku).count()
}

/// Counts one watch of a SKU as open while it lives.
struct WatchGuard(String);

impl WatchGuard {
    fn new(sku: &str) -> Self {
        OPEN_WATCHES
            .lock()
            .expect("not poisoned")
            .push(sku.to_owned());
        Self(sku.to_owned())
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut open = OPEN_WATCHES.lock().expect("not poisoned");
        if let Some(i) = open.iter().position(|s| *s == self.0) {
            open.swap_remove(i);
        }
    }
}

/// The stream of stock levels `WatchItem` sends.
type ItemStream = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<inventory::Item, tonic::Status>> + Send>,
>;

/// The chunks `DownloadItem` sends.
type DownloadStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<HttpBody, tonic::Status>> + Send>>;

/// The CSV `ExportItem` answers: a header line, then `rows` lines.
pub fn csv(sku: &str, rows: i32) -> String {
    let mut text = "sku,row,in_stock\n".to_owned();
    for row in 0..rows {
        text.push_str(&format!("{sku},{row},{}\n", 42 - row % 42));
    }
    text
}

/// Starts the inventory backend on port 0.
pub async fn start_inventory() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("has an address");
    spawn(addr, None, |shutdown| async move {
        tonic::transport::Server::builder()
            .add_service(
                inventory::inventory_service_server::InventoryServiceServer::new(Inventory)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                    .send_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move { shutdown.wait().await },
            )
            .await
            .map_err(|e| e.to_string())
    })
}

/// What a test may change before the system starts.
#[derive(Debug, Default)]
pub struct Options {
    /// Applied to the gateway's settings last.
    pub gateway: Option<fn(&mut gateway::Settings)>,
    /// Applied to the users service's settings last.
    pub users: Option<fn(&mut users::Settings)>,
    /// Name the upstreams `localhost` instead of `127.0.0.1`, so the gateway resolves
    /// them through DNS and balances over what the name yields.
    pub upstreams_by_name: bool,
}

/// Users, orders, the inventory backend and the gateway, running.
#[derive(Debug)]
pub struct System {
    /// The users service.
    pub users: Option<Running>,
    /// The orders service.
    pub orders: Option<Running>,
    /// The team backend.
    pub inventory: Option<Running>,
    /// The gateway.
    pub gateway: Option<Running>,
    /// Settings the orders service was started with (to restart it).
    pub orders_settings: orders::Settings,
    /// The users service's settings (for the admin command).
    pub users_settings: users::Settings,
    edge: Edge,
    dir: tempfile::TempDir,
    _dbs: (TestDatabase, TestDatabase),
}

impl System {
    /// Starts everything with test defaults.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Starts everything, the gateway's settings changed by `tweak`.
    pub async fn start_with_gateway(tweak: fn(&mut gateway::Settings)) -> Self {
        Self::start_with(Options {
            gateway: Some(tweak),
            ..Options::default()
        })
        .await
    }

    /// Starts everything, with `options` applied.
    pub async fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let (users_db, orders_db) = (TestDatabase::sqlite(), TestDatabase::sqlite());

        let mut us = users::settings::throwaway(users_db.url(), dir.path().join("key.pem"));
        if let Some(tweak) = options.users {
            tweak(&mut us);
        }
        let users = start::<users::Users>(us.clone()).await;

        let mut os = orders::Settings::default();
        os.grpc.addr = loopback();
        os.admin.addr = loopback();
        os.database.url = orders_db.url().to_owned();
        os.users.url = format!("http://{}", users.addr);
        let orders = start::<orders::Orders>(os.clone()).await;

        let inventory = start_inventory().await;
        let descriptors = dir.path().join("inventory.binpb");
        std::fs::write(&descriptors, INVENTORY_DESCRIPTORS).expect("descriptor file written");

        let mut gs = gateway::Settings::default();
        gs.http.addr = loopback();
        gs.admin.addr = loopback();
        let host = if options.upstreams_by_name {
            "localhost".to_owned()
        } else {
            "127.0.0.1".to_owned()
        };
        gs.users.url = format!("http://{host}:{}", users.addr.port());
        gs.orders.url = format!("http://{host}:{}", orders.addr.port());
        gs.rate_limit.per_second = 10_000;
        gs.rate_limit.burst = 10_000;
        gs.upstreams.push(gateway::settings::ExtraUpstream {
            descriptor_set: descriptors,
            services: vec!["inventory.v1.InventoryService".to_owned()],
            url: format!("http://{}", inventory.addr),
            public_methods: vec!["inventory.v1.InventoryService/GetItem".to_owned()],
            options: gateway::settings::UpstreamOptions::default(),
        });
        if let Some(tweak) = options.gateway {
            tweak(&mut gs);
        }
        let gateway = start::<gateway::Gateway>(gs).await;

        let system = Self {
            edge: Edge::new(gateway.addr),
            users: Some(users),
            orders: Some(orders),
            inventory: Some(inventory),
            gateway: Some(gateway),
            orders_settings: os,
            users_settings: us,
            dir,
            _dbs: (users_db, orders_db),
        };
        system.wait_ready().await;
        system
    }

    /// The gateway's public address.
    pub fn gateway_addr(&self) -> std::net::SocketAddr {
        self.gateway().addr
    }

    /// The gateway's admin URL of `path`.
    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.gateway().admin.expect("gateway has an admin port")
        )
    }

    fn gateway(&self) -> &Running {
        self.gateway.as_ref().expect("gateway running")
    }

    /// A folder that lives as long as the system.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits (bounded) until every running component's `/readyz` says ready.
    pub async fn wait_ready(&self) {
        let running = [&self.users, &self.orders, &self.gateway];
        for admin in running.into_iter().flatten().filter_map(|r| r.admin) {
            wait_ready(&self.http, "a component", admin, Duration::from_secs(15)).await;
        }
    }

    /// The gateway's `/readyz` status now.
    pub async fn readyz(&self) -> u16 {
        let response = self.http.get(self.admin_url("/readyz")).send().await;
        response.expect("the admin port answers").status().as_u16()
    }

    /// The text of the gateway's admin `/metrics` page.
    pub async fn metrics(&self) -> String {
        edge::page(&self.http, &self.admin_url("/metrics")).await
    }

    /// An admin made with the operator path, and a token for it.
    pub async fn admin(&self, email: &str) -> String {
        users::app::create_admin(&self.users_settings, email, "Admin", PASSWORD)
            .await
            .expect("admin created");
        self.token(email).await
    }

    /// Stops every component.
    pub async fn stop(mut self) {
        for running in [
            self.gateway.take(),
            self.orders.take(),
            self.inventory.take(),
            self.users.take(),
        ]
        .into_iter()
        .flatten()
        {
            running.stop().await;
        }
    }
}

impl std::ops::Deref for System {
    type Target = Edge;

    /// The gateway's public port, where tests send their requests.
    fn deref(&self) -> &Edge {
        &self.edge
    }
}

/// Waits (bounded by `within`) until the `/readyz` of `what`'s admin port at `admin`
/// answers 200.
pub async fn wait_ready(
    http: &reqwest::Client,
    what: &str,
    admin: impl std::fmt::Display,
    within: Duration,
) {
    let url = format!("http://{admin}/readyz");
    platform_testing::wait::until(&format!("{what} is ready ({url})"), within, async || {
        let response = http.get(&url).send().await;
        response.is_ok_and(|r| r.status().is_success())
    })
    .await;
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}
