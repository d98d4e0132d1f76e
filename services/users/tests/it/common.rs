//! A users service on port 0 with its own database and keys, and the users API to
//! call it with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform_auth::{Clock, SigningKey, TokenIssuer, TokenSettings};
use platform_shutdown::{Shutdown, Trigger};
use platform_testing::{PASSWORD, TestDatabase, UsersApi};
use tokio::task::JoinHandle;
use users::{Application, Settings};

/// The service name the health protocol reports readiness under.
pub(crate) const SERVICE: &str = "users.v1.UserService";

/// Settings for a test: port 0, cheap password hashing, keys in `dir`.
pub(crate) fn settings(db: &TestDatabase, dir: &std::path::Path) -> Settings {
    // Cheap hashing keeps the suite fast; the production cost is exercised by the
    // process tests.
    users::settings::throwaway(db.url(), dir.join("signing-key.pem"))
}

/// The service running in this process, and what it was started with.
pub(crate) struct TestApp {
    pub(crate) grpc_addr: SocketAddr,
    pub(crate) admin_addr: SocketAddr,
    pub(crate) settings: Settings,
    pub(crate) api: UsersApi,
    trigger: Trigger,
    handle: JoinHandle<anyhow::Result<()>>,
    dir: tempfile::TempDir,
    db: TestDatabase,
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
        let channel = platform_testing::connect(grpc_addr).await;
        platform_testing::wait_serving(channel.clone(), SERVICE).await;
        Self {
            grpc_addr,
            admin_addr,
            settings,
            api: UsersApi::new(channel),
            trigger,
            handle,
            dir,
            db,
        }
    }

    /// Stops the app and hands back its database and key folder.
    pub(crate) async fn stop(self) -> (TestDatabase, tempfile::TempDir, Settings) {
        self.trigger.fire();
        platform_testing::wait::stopped("users", self.handle).await;
        (self.db, self.dir, self.settings)
    }

    /// A new session of `email`, signed in with [`PASSWORD`]: the whole token answer.
    pub(crate) async fn session(
        &self,
        email: &str,
    ) -> platform_proto::users::v1::CreateTokenResponse {
        self.api
            .create_token(email, PASSWORD)
            .await
            .unwrap_or_else(|status| panic!("sign-in of {email} refused: {status:?}"))
    }

    /// An admin made by the operator path, and their token.
    pub(crate) async fn admin(&self, email: &str) -> (users::domain::User, String) {
        let admin = users::app::create_admin(&self.settings, email, "Admin", PASSWORD)
            .await
            .expect("admin created");
        let token = self
            .api
            .sign_in(email, PASSWORD)
            .await
            .expect("admin token");
        (admin, token)
    }

    /// An issuer signing with the service's own key and claims, its time read from
    /// `clock`: a token it issues is one the service itself could have issued then.
    pub(crate) fn issuer(&self, clock: Arc<dyn Clock>) -> TokenIssuer {
        let key = SigningKey::load(&self.settings.auth.signing_key_file).expect("key file");
        let auth = &self.settings.auth;
        TokenIssuer::new(
            key,
            TokenSettings {
                issuer: auth.verification.issuer.clone(),
                audience: auth.verification.audience.clone(),
                ttl: Duration::from_secs(auth.token_ttl_secs),
            },
        )
        .with_clock(clock)
    }
}
