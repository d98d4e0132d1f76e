//! The orders service's settings: built-in defaults for the embedded run, then
//! `--config FILE`, then `ORDERS__…` environment variables (see `platform-config`).

use platform_auth::VerificationSettings;
use platform_client::ClientSettings;
pub use platform_config::Layered;
use platform_config::{ConfigError, require_http_url, require_positive};
use platform_db::Migrations;
use platform_kernel::{Embedded, OwnSettings, ServiceSettings};
use platform_proto::orders::v1::order_service_server;
use serde::{Deserialize, Serialize};

/// Every setting of the orders service.
pub type Settings = ServiceSettings<Own>;

/// The orders service's own sections, beside the shared ones of [`ServiceSettings`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Own {
    /// Verifying access tokens.
    pub auth: AuthSettings,
    /// The users service.
    pub users: UsersSettings,
    /// How outgoing calls resolve, retry and eject upstreams.
    pub client: ClientSettings,
    /// Watching orders live (`WatchOrders`).
    pub watch: WatchSettings,
}

/// The `[watch]` section: how much a watcher may fall behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchSettings {
    /// Changes a watcher may have waiting unread; one more ends its watch with
    /// RESOURCE_EXHAUSTED (it watches again from its last event id), so a slow client
    /// holds at most this many in memory and never holds back the others.
    pub buffer: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self { buffer: 256 }
    }
}

/// The `[auth]` section: what tokens must say to be accepted. The keys come from the
/// users service's `GetJwks`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// The shared verification settings; wrapped only so that a misspelt key in
    /// `[auth]` is still an error.
    #[serde(flatten)]
    pub verification: VerificationSettings,
}

/// The `[users]` section: the upstream users service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersSettings {
    /// gRPC endpoint, `http://host:port`.
    pub url: String,
    /// Upper bound of one call to users; the incoming call's deadline may shorten it.
    pub timeout_ms: u64,
    /// How long connecting may take before the call fails UNAVAILABLE.
    pub connect_timeout_ms: u64,
    /// How long a confirmed account stays confirmed without asking again.
    pub cache_ttl_ms: u64,
    /// Most accounts remembered at once.
    pub cache_capacity: u64,
}

impl Default for UsersSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:50051".to_owned(),
            timeout_ms: 2_000,
            connect_timeout_ms: 1_000,
            cache_ttl_ms: 5_000,
            cache_capacity: 10_000,
        }
    }
}

impl OwnSettings for Own {
    const GRPC_SERVICE: &'static str = order_service_server::SERVICE_NAME;
    const MIGRATIONS: Migrations = crate::store::MIGRATIONS;
    const ENV_PREFIX: &'static str = "ORDERS";
    const EMBEDDED: Embedded = Embedded {
        grpc_port: 50052,
        admin_port: 9102,
        database_url: "sqlite://data/orders.db",
    };

    fn validate(settings: &Settings) -> Result<(), ConfigError> {
        require_http_url("users.url", &settings.users.url)?;
        require_positive("users.timeout_ms", settings.users.timeout_ms)?;
        require_positive("watch.buffer", settings.watch.buffer as u64)?;
        settings.auth.verification.validate("auth")?;
        settings.client.validate("client")?;
        Ok(())
    }
}
