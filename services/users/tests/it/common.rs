//! A users service on port 0 with its own database and keys, and a typed client.

#![allow(dead_code, reason = "each module uses its own part of the harness")]

use std::net::SocketAddr;
use std::time::Duration;

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::TestDatabase;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use users::{AppError, Application, Settings};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Settings for a test: port 0, cheap password hashing, keys in `dir`.
pub(crate) fn settings(db: &TestDatabase, dir: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.grpc.addr = "127.0.0.1:0".parse().unwrap();
    s.admin.addr = "127.0.0.1:0".parse().unwrap();
    s.database.url = db.url().to_owned();
    s.auth.signing_key_file = dir.join("signing-key.pem");
    // Cheap hashing keeps the suite fast; the production cost is exercised by the
    // process tests.
    s.password.memory_kib = 1024;
    s.password.iterations = 1;
    s
}

pub(crate) struct TestApp {
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) settings: Settings,
    pub(crate) client: UserServiceClient<Channel>,
    trigger: Trigger,
    handle: JoinHandle<Result<(), AppError>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: TestDatabase,
}

impl TestApp {
    pub(crate) async fn spawn(db: TestDatabase) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    pub(crate) async fn spawn_with(db: TestDatabase, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(&db, dir.path());
        tweak(&mut s);
        Self::start(db, dir, s).await
    }

    pub(crate) async fn start(
        db: TestDatabase,
        dir: tempfile::TempDir,
        settings: Settings,
    ) -> Self {
        let app = Application::build(settings.clone())
            .await
            .expect("app builds");
        let grpc_addr = app.public_addr();
        let admin_addr = app.admin_addr();
        let (trigger, shutdown) = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown));
        let channel = Channel::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect()
            .await
            .expect("connects");
        wait_serving(channel.clone()).await;
        Self {
            grpc_addr,
            admin_addr,
            settings,
            client: UserServiceClient::new(channel),
            trigger,
            handle,
            dir,
            db,
        }
    }

    /// Stops the app and hands back its database and key folder.
    pub(crate) async fn stop(self) -> (TestDatabase, tempfile::TempDir, Settings) {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("stops in time")
            .expect("task ran")
            .expect("clean stop");
        (self.db, self.dir, self.settings)
    }

    pub(crate) async fn sign_up(&self, email: &str) -> pb::User {
        self.client
            .clone()
            .create_user(pb::CreateUserRequest {
                email: email.to_owned(),
                display_name: "Test User".to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await
            .expect("sign-up succeeds")
            .into_inner()
    }

    pub(crate) async fn token(&self, email: &str, password: &str) -> Result<String, tonic::Status> {
        self.client
            .clone()
            .create_token(pb::CreateTokenRequest {
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .await
            .map(|r| r.into_inner().access_token)
    }

    /// A signed-up user and their token.
    pub(crate) async fn user(&self, email: &str) -> (pb::User, String) {
        let user = self.sign_up(email).await;
        let token = self.token(email, PASSWORD).await.expect("token");
        (user, token)
    }

    /// An admin made by the operator path, and their token.
    pub(crate) async fn admin(&self, email: &str) -> (users::domain::User, String) {
        let admin = users::app::create_admin(&self.settings, email, "Admin", PASSWORD)
            .await
            .expect("admin created");
        let token = self.token(email, PASSWORD).await.expect("admin token");
        (admin, token)
    }
}

/// `message` with `authorization: Bearer <token>`.
pub(crate) fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Waits (bounded) until the health service says SERVING.
pub(crate) async fn wait_serving(channel: Channel) {
    let mut health = HealthClient::new(channel);
    for _ in 0..100 {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "users.v1.UserService".to_owned(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.is_ok_and(|s| s == ServingStatus::Serving as i32) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("service never became SERVING");
}
