//! The orders service on port 0 in front of a real users service on port 0, each with
//! its own database, and typed clients for both.

#![allow(dead_code, reason = "each module uses its own part of the harness")]

use std::net::SocketAddr;
use std::time::Duration;

use platform_proto::orders::v1::order_service_client::OrderServiceClient;
use platform_proto::users::v1 as users_pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::TestDatabase;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A running users service.
pub(crate) struct Users {
    pub(crate) addr: SocketAddr,
    pub(crate) settings: users::Settings,
    pub(crate) client: UserServiceClient<Channel>,
    trigger: Trigger,
    handle: JoinHandle<Result<(), users::AppError>>,
}

impl Users {
    pub(crate) async fn start(settings: users::Settings) -> Self {
        let app = users::Application::build(settings.clone())
            .await
            .expect("users builds");
        let addr = app.public_addr();
        let (trigger, shutdown) = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown));
        let channel = channel(addr).await;
        wait_serving(channel.clone(), "users.v1.UserService").await;
        Self {
            addr,
            settings,
            client: UserServiceClient::new(channel),
            trigger,
            handle,
        }
    }

    pub(crate) async fn stop(self) -> users::Settings {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("users stops in time")
            .unwrap()
            .unwrap();
        self.settings
    }
}

/// Both services and their databases.
pub(crate) struct Stack {
    pub(crate) users: Option<Users>,
    /// The address users was first bound to, so a restart comes back on it.
    users_addr: SocketAddr,
    pub(crate) orders_addr: SocketAddr,
    pub(crate) orders_admin: SocketAddr,
    pub(crate) orders: OrderServiceClient<Channel>,
    pub(crate) users_client: UserServiceClient<Channel>,
    orders_trigger: Trigger,
    orders_handle: JoinHandle<Result<(), orders::AppError>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) users_db: TestDatabase,
    pub(crate) orders_db: TestDatabase,
}

impl Stack {
    pub(crate) async fn spawn(orders_db: TestDatabase, users_db: TestDatabase) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut us = users::Settings::default();
        us.grpc.addr = "127.0.0.1:0".parse().unwrap();
        us.admin.addr = "127.0.0.1:0".parse().unwrap();
        us.database.url = users_db.url().to_owned();
        us.auth.signing_key_file = dir.path().join("key.pem");
        us.password.memory_kib = 1024;
        us.password.iterations = 1;
        let users = Users::start(us).await;

        let mut os = orders::Settings::default();
        os.grpc.addr = "127.0.0.1:0".parse().unwrap();
        os.admin.addr = "127.0.0.1:0".parse().unwrap();
        os.database.url = orders_db.url().to_owned();
        os.users.url = format!("http://{}", users.addr);
        let app = orders::Application::build(os).await.expect("orders builds");
        let orders_addr = app.public_addr();
        let orders_admin = app.admin_addr();
        let (orders_trigger, shutdown) = Shutdown::new();
        let orders_handle = tokio::spawn(app.run_until_stopped(shutdown));
        let orders_channel = channel(orders_addr).await;
        wait_serving(orders_channel.clone(), "orders.v1.OrderService").await;
        Self {
            users_addr: users.addr,
            users_client: users.client.clone(),
            users: Some(users),
            orders_addr,
            orders_admin,
            orders: OrderServiceClient::new(orders_channel),
            orders_trigger,
            orders_handle,
            dir,
            users_db,
            orders_db,
        }
    }

    pub(crate) fn users_addr_for_restart(&self) -> SocketAddr {
        self.users_addr
    }

    pub(crate) async fn stop(mut self) {
        self.orders_trigger.fire();
        tokio::time::timeout(Duration::from_secs(10), self.orders_handle)
            .await
            .expect("orders stops in time")
            .unwrap()
            .unwrap();
        if let Some(users) = self.users.take() {
            users.stop().await;
        }
    }

    /// Signs a user up and returns their id and token.
    pub(crate) async fn user(&self, email: &str) -> (String, String) {
        let user = self
            .users_client
            .clone()
            .create_user(users_pb::CreateUserRequest {
                email: email.to_owned(),
                display_name: "Test".to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await
            .expect("sign-up")
            .into_inner();
        (user.id, self.token(email).await)
    }

    pub(crate) async fn token(&self, email: &str) -> String {
        self.users_client
            .clone()
            .create_token(users_pb::CreateTokenRequest {
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await
            .expect("token")
            .into_inner()
            .access_token
    }

    /// An admin and their token.
    pub(crate) async fn admin(&self, email: &str) -> (String, String) {
        let settings = &self.users.as_ref().expect("users running").settings;
        let admin = users::app::create_admin(settings, email, "Admin", PASSWORD)
            .await
            .expect("admin created");
        (admin.id.to_string(), self.token(email).await)
    }
}

pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// `message` with `authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Waits (bounded) until `service` reports `want`.
pub(crate) async fn wait_status(channel: Channel, service: &str, want: ServingStatus) {
    let mut health = HealthClient::new(channel);
    for _ in 0..200 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.is_ok_and(|s| s == want as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service} never reported {want:?}");
}

pub(crate) async fn wait_serving(channel: Channel, service: &str) {
    wait_status(channel, service, ServingStatus::Serving).await;
}
