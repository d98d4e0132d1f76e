//! The gateway's settings: built-in defaults for the embedded run, then
//! `--config FILE`, then `GATEWAY__…` environment variables (see `platform-config`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use platform_auth::VerificationSettings;
use platform_client::ClientSettings;
pub use platform_config::Layered;
use platform_config::{ConfigError, require_http_url, require_positive};
use platform_server::AdminSettings;
use platform_telemetry::LogSettings;
use serde::{Deserialize, Serialize};

/// Every setting of the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The public HTTP port.
    pub http: HttpSettings,
    /// The admin HTTP port.
    pub admin: AdminSettings,
    /// Logging.
    pub log: LogSettings,
    /// The users service (`users.v1`).
    pub users: UpstreamSettings,
    /// The orders service (`orders.v1`).
    pub orders: UpstreamSettings,
    /// Further services exposed by configuration alone: a descriptor set and where
    /// its services run.
    pub upstreams: Vec<ExtraUpstream>,
    /// Verifying access tokens.
    pub auth: AuthSettings,
    /// Per-caller request rate.
    pub rate_limit: RateLimitSettings,
    /// Cross-origin requests from browsers.
    pub cors: CorsSettings,
    /// How upstream calls resolve, retry and eject upstreams.
    pub client: ClientSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            admin: AdminSettings {
                addr: ([127, 0, 0, 1], 9100).into(),
            },
            log: LogSettings::default(),
            users: UpstreamSettings {
                url: "http://127.0.0.1:50051".to_owned(),
            },
            orders: UpstreamSettings {
                url: "http://127.0.0.1:50052".to_owned(),
            },
            upstreams: Vec::new(),
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            cors: CorsSettings::default(),
            client: ClientSettings::default(),
        }
    }
}

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Public listen address.
    pub addr: SocketAddr,
    /// Largest request body accepted; larger is 413.
    pub max_body_bytes: usize,
    /// Deadline of every call unless the client asks for less (`grpc-timeout` or
    /// `Request-Timeout`); past it the client gets 504.
    pub default_timeout_ms: u64,
    /// How long connecting to an upstream may take before the call is 503.
    pub connect_timeout_ms: u64,
    /// After SIGTERM, how long requests in flight may take to finish.
    pub grace_period_ms: u64,
    /// Longest a server-streaming response may last (streams are exempt from
    /// `default_timeout_ms`); the client may ask for less with `Request-Timeout`.
    pub max_stream_duration_ms: u64,
    /// Interval of the comment lines that keep an idle Server-Sent Events stream open.
    pub sse_heartbeat_ms: u64,
    /// How long a client may take to send a request's headers; then it is cut off.
    pub header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body; then it gets 408.
    pub body_read_timeout_ms: u64,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl HttpSettings {
    /// The limits the server holds clients to.
    pub fn limits(&self) -> platform_server::http::HttpLimits {
        platform_server::http::HttpLimits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            max_connections: self.max_connections,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: ([127, 0, 0, 1], 8080).into(),
            max_body_bytes: 1024 * 1024,
            default_timeout_ms: 10_000,
            connect_timeout_ms: 1_000,
            grace_period_ms: 20_000,
            max_stream_duration_ms: 3_600_000,
            sse_heartbeat_ms: 15_000,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            max_connections: 10_000,
        }
    }
}

/// One upstream gRPC service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `http://host:port`; a DNS name is balanced over every address it resolves to.
    pub url: String,
}

/// A team's service exposed through the edge without rebuilding the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraUpstream {
    /// A `FileDescriptorSet` with imports and source info (`buf build -o`,
    /// `protoc --include_imports --include_source_info --descriptor_set_out`).
    pub descriptor_set: PathBuf,
    /// Fully qualified services, or packages, to expose from it.
    pub services: Vec<String>,
    /// Where they run.
    pub url: String,
    /// Methods callable without a token, as `package.Service/Method`.
    #[serde(default)]
    pub public_methods: Vec<String>,
}

/// The `[auth]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// What tokens must say, and how often users' key set may be refetched.
    #[serde(flatten)]
    pub verification: VerificationSettings,
    /// Methods callable without a token, as `package.Service/Method`.
    pub public_methods: Vec<String>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            verification: VerificationSettings::default(),
            public_methods: vec![
                "users.v1.UserService/CreateUser".to_owned(),
                "users.v1.UserService/CreateToken".to_owned(),
                "users.v1.UserService/RefreshToken".to_owned(),
                "users.v1.UserService/RevokeToken".to_owned(),
                "users.v1.UserService/GetJwks".to_owned(),
            ],
        }
    }
}

/// The `[rate_limit]` section: a token bucket per caller (the token's subject, else
/// the client address), in this process or shared by every replica through Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Sustained requests per second per caller.
    pub per_second: u32,
    /// Requests a caller may make at once before the sustained rate applies.
    pub burst: u32,
    /// `redis://host:port/db`: every replica draws from one budget per caller kept
    /// there. Empty: each process keeps its own buckets (the embedded default).
    pub redis_url: String,
    /// Bound of one Redis call; past it the request is served as if Redis were down.
    pub redis_timeout_ms: u64,
    /// With Redis unreachable: serve without limiting (`true`), or answer 503.
    pub fail_open: bool,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDRs (`10.0.0.0/8`) or single
    /// addresses. Empty: the header is ignored and the TCP peer is the client.
    #[serde(with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
    /// The most `X-Forwarded-For` entries read, from the right, looking for the first
    /// address that is not a trusted proxy.
    pub forwarded_hops: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        // A person clicking through a UI stays far below 10/s; a script hammering the
        // API hits the limit within a second.
        Self {
            per_second: 10,
            burst: 20,
            redis_url: String::new(),
            // A Redis round trip in one data centre takes well under a millisecond;
            // 50 ms means it is in trouble, and a request should not wait on it.
            redis_timeout_ms: 50,
            fail_open: true,
            trusted_proxies: Vec::new(),
            forwarded_hops: 3,
        }
    }
}

/// `trusted_proxies` as strings: CIDRs, or single addresses taken as one host.
mod networks {
    use std::net::IpAddr;

    use ipnet::IpNet;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        nets: &[IpNet],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(nets.iter().map(ToString::to_string))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        D::Error::custom(format!(
                            "`{text}` is not a CIDR (10.0.0.0/8) or an IP address"
                        ))
                    })
            })
            .collect()
    }
}

/// The `[cors]` section; no origins means no CORS headers at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser, e.g. `https://app.example.com`;
    /// `*` allows any (without credentials).
    pub allowed_origins: Vec<String>,
    /// How long browsers may cache a preflight answer.
    pub max_age_secs: u64,
}

impl Layered for Settings {
    const ENV_PREFIX: &'static str = "GATEWAY";
    const ENV_LISTS: &'static [&'static str] = &["rate_limit.trusted_proxies"];

    fn validate(&self) -> Result<(), ConfigError> {
        require_http_url("users.url", &self.users.url)?;
        require_http_url("orders.url", &self.orders.url)?;
        for (i, extra) in self.upstreams.iter().enumerate() {
            require_http_url(&format!("upstreams[{i}].url"), &extra.url)?;
            if extra.services.is_empty() {
                return Err(ConfigError::rule(
                    format!("upstreams[{i}].services"),
                    "must name at least one service or package",
                ));
            }
        }
        require_positive(
            "rate_limit.per_second",
            u64::from(self.rate_limit.per_second),
        )?;
        require_positive("rate_limit.burst", u64::from(self.rate_limit.burst))?;
        require_positive(
            "rate_limit.redis_timeout_ms",
            self.rate_limit.redis_timeout_ms,
        )?;
        require_positive(
            "rate_limit.forwarded_hops",
            u64::from(self.rate_limit.forwarded_hops),
        )?;
        let redis_url = &self.rate_limit.redis_url;
        // The reason never repeats the URL: it may carry a password.
        if !redis_url.is_empty()
            && (!redis_url.starts_with("redis://")
                || redis::Client::open(redis_url.as_str()).is_err())
        {
            return Err(ConfigError::rule(
                "rate_limit.redis_url",
                "must be a redis://[:password@]host[:port][/db] URL, or empty",
            ));
        }
        require_positive("http.max_body_bytes", self.http.max_body_bytes as u64)?;
        require_positive("http.default_timeout_ms", self.http.default_timeout_ms)?;
        require_positive(
            "http.max_stream_duration_ms",
            self.http.max_stream_duration_ms,
        )?;
        require_positive("http.sse_heartbeat_ms", self.http.sse_heartbeat_ms)?;
        require_positive(
            "http.header_read_timeout_ms",
            self.http.header_read_timeout_ms,
        )?;
        require_positive("http.body_read_timeout_ms", self.http.body_read_timeout_ms)?;
        require_positive("http.max_connections", self.http.max_connections as u64)?;
        self.auth
            .verification
            .validate("auth")
            .map_err(|e| ConfigError::rule(e.key, e.reason))?;
        self.client
            .validate("client")
            .map_err(|e| ConfigError::rule(e.key, e.reason))?;
        Ok(())
    }
}

impl Settings {
    /// Every method callable without a token.
    pub fn public_methods(&self) -> HashSet<String> {
        self.auth
            .public_methods
            .iter()
            .chain(self.upstreams.iter().flat_map(|u| &u.public_methods))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use platform_config::Sources;

    use super::*;

    fn from_env(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load_from(Sources::new("GATEWAY").with_env(env.iter().copied()))
    }

    #[test]
    fn trusted_proxies_come_from_one_comma_separated_variable() {
        let settings = from_env(&[(
            "GATEWAY__RATE_LIMIT__TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7,fd00::/8",
        )])
        .unwrap();
        let nets: Vec<String> = settings
            .rate_limit
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        assert!(Settings::default().rate_limit.trusted_proxies.is_empty());

        let err = from_env(&[("GATEWAY__RATE_LIMIT__TRUSTED_PROXIES", "10.0.0.0/8,lan")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("rate_limit.trusted_proxies"), "{err}");
        assert!(err.contains("`lan` is not a CIDR"), "{err}");
    }

    #[test]
    fn the_redis_url_is_checked_without_being_repeated() {
        let settings = from_env(&[
            ("GATEWAY__RATE_LIMIT__REDIS_URL", "redis://redis:6379/0"),
            ("GATEWAY__RATE_LIMIT__FAIL_OPEN", "false"),
        ])
        .unwrap();
        assert_eq!(settings.rate_limit.redis_url, "redis://redis:6379/0");
        assert!(!settings.rate_limit.fail_open);

        for bad in ["http://:s3cret@redis:6379", "redis://:s3cret@redis:port"] {
            let err = from_env(&[("GATEWAY__RATE_LIMIT__REDIS_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("rate_limit.redis_url"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn the_dns_server_and_retries_are_set_from_the_environment() {
        let settings = from_env(&[
            ("GATEWAY__CLIENT__DNS_SERVER", "127.0.0.1:5353"),
            ("GATEWAY__CLIENT__RETRY_MAX_ATTEMPTS", "2"),
        ])
        .unwrap();
        assert_eq!(
            settings.client.dns_server,
            Some(SocketAddr::from(([127, 0, 0, 1], 5353)))
        );
        assert_eq!(settings.client.retry_max_attempts, 2);
        assert_eq!(
            Settings::default().client.dns_server,
            None,
            "system resolver"
        );

        let err = from_env(&[("GATEWAY__CLIENT__RETRY_MAX_ATTEMPTS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("client.retry_max_attempts"), "{err}");
    }
}
