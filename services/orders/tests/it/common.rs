//! The orders service on port 0, with its own database, in front of a fake users
//! service: accounts and tokens are the test's own, so orders is tested alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform_auth::{Role, SigningKey, TokenIssuer, TokenSettings};
use platform_proto::orders::v1 as pb;
use platform_proto::orders::v1::order_service_client::OrderServiceClient;
use platform_proto::users::v1 as users_pb;
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::fake_users::{self, Reply, UsersFake};
use platform_testing::{TestDatabase, answer, authed};
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The service name orders reports readiness under.
pub(crate) const ORDERS: &str = "orders.v1.OrderService";

/// An order of one book, without an idempotency key.
pub(crate) fn order_request() -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        items: vec![pb::OrderItem {
            sku: "BOOK-1".to_owned(),
            quantity: 1,
            unit_price_cents: 1250,
        }],
        ..Default::default()
    }
}

const USERS: &str = "users.v1.UserService";

/// What the fake users service knows: the public key tokens are signed with, and the
/// accounts that exist (id to email and role).
#[derive(Debug)]
struct Directory {
    jwk: platform_auth::Jwk,
    accounts: Mutex<HashMap<String, (String, users_pb::Role)>>,
}

impl Directory {
    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, users_pb::Role)>> {
        self.accounts
            .lock()
            .expect("no test panicked holding the lock")
    }
}

/// `users.v1.UserService` as orders uses it: `GetJwks`, and `GetUser` of the
/// accounts the test registered (NOT_FOUND otherwise).
#[derive(Debug, Clone)]
struct FakeUserService(Arc<Directory>);

#[tonic::async_trait]
impl UsersFake for FakeUserService {
    async fn get_jwks(
        &self,
        _: Request<users_pb::GetJwksRequest>,
    ) -> Reply<users_pb::GetJwksResponse> {
        Ok(Response::new(users_pb::GetJwksResponse {
            keys: vec![platform_auth::jwk_to_proto(&self.0.jwk)],
        }))
    }

    async fn get_user(&self, request: Request<users_pb::GetUserRequest>) -> Reply<users_pb::User> {
        let id = request.into_inner().id;
        let account = self.0.accounts().get(&id).cloned();
        let (email, role) = account.ok_or_else(|| Status::not_found("no such user"))?;
        Ok(Response::new(users_pb::User {
            id,
            email,
            display_name: "Test".to_owned(),
            role: role as i32,
            ..Default::default()
        }))
    }
}

/// The fake users service, served on one address that it keeps across a stop and a
/// start, as a restarted deployment would.
pub(crate) struct FakeUsers {
    directory: Arc<Directory>,
    addr: SocketAddr,
    running: Option<(Trigger, JoinHandle<Result<(), tonic::transport::Error>>)>,
}

impl FakeUsers {
    async fn spawn(jwk: platform_auth::Jwk) -> Self {
        let mut users = Self {
            directory: Arc::new(Directory {
                jwk,
                accounts: Mutex::default(),
            }),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            running: None,
        };
        users.start().await;
        users
    }

    /// Serves (again) on its address, SERVING on the health protocol.
    pub(crate) async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("binds its address");
        self.addr = listener.local_addr().expect("has an address");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(USERS, tonic_health::ServingStatus::Serving)
            .await;
        let (trigger, shutdown) = Shutdown::new();
        let server = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(fake_users::serve(FakeUserService(Arc::clone(
                &self.directory,
            ))))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown.wait_owned(),
            );
        self.running = Some((trigger, tokio::spawn(server)));
    }

    /// Stops serving: the address refuses connections until [`Self::start`].
    pub(crate) async fn stop(&mut self) {
        let (trigger, handle) = self.running.take().expect("users is running");
        trigger.fire();
        platform_testing::wait::stopped("users", handle).await;
    }

    /// Forgets an account, as deleting it would.
    pub(crate) fn delete(&self, id: &str) {
        self.directory.accounts().remove(id);
    }

    /// Changes an account's role, as an admin's `UpdateUser` would.
    pub(crate) fn set_role(&self, id: &str, role: users_pb::Role) {
        if let Some(account) = self.directory.accounts().get_mut(id) {
            account.1 = role;
        }
    }

    fn register(&self, email: &str, role: users_pb::Role) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.directory
            .accounts()
            .insert(id.clone(), (email.to_owned(), role));
        id
    }
}

/// Orders on port 0 and its database, the fake users service, and the issuer of the
/// tokens the test's callers present.
pub(crate) struct Stack {
    pub(crate) users: FakeUsers,
    pub(crate) orders_addr: SocketAddr,
    pub(crate) orders: OrderServiceClient<Channel>,
    issuer: TokenIssuer,
    process: Replica,
    settings: orders::Settings,
    pub(crate) db: TestDatabase,
}

/// An orders process: the stack's own, or one more on the same database, users and
/// broker as the stack's.
pub(crate) struct Replica {
    pub(crate) orders: OrderServiceClient<Channel>,
    trigger: Trigger,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// Builds and runs orders with `settings`, once it reports SERVING; with the
    /// address it serves on.
    async fn start(settings: orders::Settings) -> (SocketAddr, Self) {
        let app = orders::Application::build(settings)
            .await
            .expect("orders builds");
        let addr = app.public_addr();
        let (trigger, shutdown) = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown));
        let channel = platform_testing::connect(addr).await;
        platform_testing::wait_serving(channel.clone(), ORDERS).await;
        let orders = OrderServiceClient::new(channel);
        (
            addr,
            Self {
                orders,
                trigger,
                handle,
            },
        )
    }

    pub(crate) async fn stop(self) {
        self.trigger.fire();
        platform_testing::wait::stopped("orders", self.handle).await;
    }
}

impl Stack {
    pub(crate) async fn spawn(db: TestDatabase) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Orders with its settings changed by `adjust` (the events broker, say).
    pub(crate) async fn spawn_with(
        db: TestDatabase,
        adjust: impl FnOnce(&mut orders::Settings),
    ) -> Self {
        let mut settings = orders::Settings::default();
        let verification = &settings.auth.verification;
        let issuer = TokenIssuer::new(
            SigningKey::generate().expect("a key"),
            TokenSettings {
                issuer: verification.issuer.clone(),
                audience: verification.audience.clone(),
                ttl: Duration::from_secs(900),
            },
        );
        let users = FakeUsers::spawn(issuer.public_jwk()).await;

        settings.grpc.addr = "127.0.0.1:0".parse().unwrap();
        settings.admin.addr = "127.0.0.1:0".parse().unwrap();
        settings.database.url = db.url().to_owned();
        settings.users.url = format!("http://{}", users.addr);
        adjust(&mut settings);
        let (orders_addr, process) = Replica::start(settings.clone()).await;
        Self {
            users,
            orders_addr,
            orders: process.orders.clone(),
            issuer,
            process,
            settings,
            db,
        }
    }

    /// Another orders process like this one (its own ports).
    pub(crate) async fn replica(&self) -> Replica {
        Replica::start(self.settings.clone()).await.1
    }

    pub(crate) async fn stop(self) {
        self.process.stop().await;
    }

    /// A new account known to users, and a token for it.
    pub(crate) fn user(&self, email: &str) -> (String, String) {
        self.account(email, Role::User)
    }

    /// A new admin known to users, and a token for it.
    pub(crate) fn admin(&self, email: &str) -> (String, String) {
        self.account(email, Role::Admin)
    }

    fn account(&self, email: &str, role: Role) -> (String, String) {
        let stored = match role {
            Role::Admin => users_pb::Role::Admin,
            Role::User => users_pb::Role::User,
        };
        let id = self.users.register(email, stored);
        let token = self.issuer.issue(&id, role).expect("token issued");
        (id, token.access_token)
    }

    /// `CreateOrder` as the holder of `token`.
    pub(crate) async fn create_order(
        &self,
        request: pb::CreateOrderRequest,
        token: &str,
    ) -> Result<pb::Order, Status> {
        answer(self.orders.clone().create_order(authed(request, token))).await
    }

    /// `GetOrder` of `id` as the holder of `token`.
    pub(crate) async fn get_order(&self, id: &str, token: &str) -> Result<pb::Order, Status> {
        let request = pb::GetOrderRequest { id: id.to_owned() };
        answer(self.orders.clone().get_order(authed(request, token))).await
    }

    /// `CancelOrder` of `id` as the holder of `token`.
    pub(crate) async fn cancel_order(&self, id: &str, token: &str) -> Result<pb::Order, Status> {
        let request = pb::CancelOrderRequest { id: id.to_owned() };
        answer(self.orders.clone().cancel_order(authed(request, token))).await
    }

    /// `WatchOrders` as the holder of `token`: the stream once the server accepted it.
    pub(crate) async fn watch(
        &self,
        request: pb::WatchOrdersRequest,
        token: &str,
    ) -> Result<tonic::Streaming<pb::OrderChange>, Status> {
        watch_on(&self.orders, request, token).await
    }

    /// `ListOrders` as the holder of `token`.
    pub(crate) async fn list_orders(
        &self,
        request: pb::ListOrdersRequest,
        token: &str,
    ) -> Result<pb::ListOrdersResponse, Status> {
        answer(self.orders.clone().list_orders(authed(request, token))).await
    }
}

/// `WatchOrders` on `orders` as the holder of `token`.
pub(crate) async fn watch_on(
    orders: &OrderServiceClient<Channel>,
    request: pb::WatchOrdersRequest,
    token: &str,
) -> Result<tonic::Streaming<pb::OrderChange>, Status> {
    answer(orders.clone().watch_orders(authed(request, token))).await
}
