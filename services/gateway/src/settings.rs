//! The gateway's settings: built-in defaults for the embedded run, then
//! `--config FILE`, then `GATEWAY__…` environment variables (see `platform-config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use platform_auth::VerificationSettings;
use platform_client::ClientSettings;
pub use platform_config::Layered;
use platform_config::{ConfigError, require_http_url, require_positive};
use platform_kernel::{KernelSettings, Sections};
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
            users: UpstreamSettings::at("http://127.0.0.1:50051"),
            orders: UpstreamSettings::at("http://127.0.0.1:50052"),
            upstreams: Vec::new(),
            auth: AuthSettings::default(),
            rate_limit: RateLimitSettings::default(),
            cors: CorsSettings::default(),
            client: ClientSettings::default(),
        }
    }
}

impl KernelSettings for Settings {
    fn sections(&self) -> Sections<'_> {
        Sections::http(&self.log, &self.admin)
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
    /// Responses of at least this many bytes are compressed (gzip, br or zstd, as the
    /// client's `Accept-Encoding` allows); smaller ones gain too little to be worth
    /// the CPU. Streams are never compressed.
    pub compression_min_bytes: u64,
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
            compression_min_bytes: 1024,
        }
    }
}

/// One upstream gRPC service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// `http://host:port`; a DNS name is balanced over every address it resolves to.
    pub url: String,
    /// Headers, compression and JSON options of the calls to it.
    #[serde(flatten)]
    pub options: UpstreamOptions,
}

impl UpstreamSettings {
    /// An upstream at `url` with the default options.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            options: UpstreamOptions::default(),
        }
    }
}

/// How the edge talks to one upstream: the same keys in `[users]`, `[orders]` and each
/// `[[upstreams]]` entry.
///
/// No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the
/// embedding sections deny unknown keys for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UpstreamOptions {
    /// Request headers sent on as gRPC metadata of the same name (case-insensitive).
    /// `Grpc-Metadata-<key>` headers are sent as `<key>` whatever this says.
    pub forward_request_headers: Vec<String>,
    /// Response metadata returned to the client: headers as `Grpc-Metadata-<key>`,
    /// trailers as `Grpc-Trailer-<key>`. Keys not listed are dropped, as internal
    /// metadata must not leak by default.
    pub forward_response_metadata: Vec<String>,
    /// Compression of the gRPC messages to and from it.
    pub compression: GrpcCompression,
    /// How its messages are written as and read from JSON.
    pub json: JsonSettings,
}

/// gRPC message compression towards an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GrpcCompression {
    /// Messages travel as they are.
    #[default]
    None,
    /// Requests are gzip-compressed, and gzip-compressed responses accepted.
    Gzip,
}

/// JSON options of one upstream's methods; the defaults are the canonical proto3 JSON
/// mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JsonSettings {
    /// Write fields at their default value too: `0`, `""`, `[]`, `{}`, and `null`
    /// for an unset message field.
    pub emit_unpopulated: bool,
    /// Write proto field names (`in_stock`) instead of lowerCamelCase (`inStock`).
    pub proto_field_names: bool,
    /// Write enum values as numbers instead of names.
    pub enums_as_numbers: bool,
    /// What a query parameter that names no field gets.
    pub unknown_query_parameters: UnknownQueryParameters,
}

/// What a query parameter that names no field of the request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownQueryParameters {
    /// 400, naming the parameter.
    #[default]
    Reject,
    /// Left out of the request (cache busters, tracking parameters).
    Ignore,
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
    /// Headers, compression and JSON options of the calls to it.
    #[serde(flatten)]
    pub options: UpstreamOptions,
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
    const ENV_LISTS: &'static [&'static str] = &[
        "rate_limit.trusted_proxies",
        "users.forward_request_headers",
        "users.forward_response_metadata",
        "orders.forward_request_headers",
        "orders.forward_response_metadata",
        "cors.allowed_origins",
        "auth.public_methods",
    ];

    fn validate(&self) -> Result<(), ConfigError> {
        require_http_url("users.url", &self.users.url)?;
        validate_options("users", &self.users.options)?;
        require_http_url("orders.url", &self.orders.url)?;
        validate_options("orders", &self.orders.options)?;
        for (i, extra) in self.upstreams.iter().enumerate() {
            require_http_url(&format!("upstreams[{i}].url"), &extra.url)?;
            validate_options(&format!("upstreams[{i}]"), &extra.options)?;
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
        self.auth.verification.validate("auth")?;
        self.client.validate("client")?;
        Ok(())
    }
}

/// Metadata keys the gateway sets itself (or that HTTP/2 and gRPC reserve): a header
/// forwarded under one of these names would replace the verified token, the request
/// id or the client's address.
pub const RESERVED_METADATA: &[&str] = &[
    "authorization",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "traceparent",
    "tracestate",
    "content-type",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "te",
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];

/// Whether gRPC metadata may carry `key` (lower case) through the gateway.
pub fn is_reserved_metadata(key: &str) -> bool {
    key.starts_with("grpc-") || RESERVED_METADATA.contains(&key)
}

fn validate_options(section: &str, options: &UpstreamOptions) -> Result<(), ConfigError> {
    let lists = [
        ("forward_request_headers", &options.forward_request_headers),
        (
            "forward_response_metadata",
            &options.forward_response_metadata,
        ),
    ];
    for (key, names) in lists {
        for name in names {
            let lower = name.trim().to_ascii_lowercase();
            if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(lower.as_bytes())
                .is_err()
                && tonic::metadata::MetadataKey::<tonic::metadata::Binary>::from_bytes(
                    lower.as_bytes(),
                )
                .is_err()
            {
                return Err(ConfigError::rule(
                    format!("{section}.{key}"),
                    format!("`{name}` is not a header name"),
                ));
            }
            if is_reserved_metadata(&lower) {
                return Err(ConfigError::rule(
                    format!("{section}.{key}"),
                    format!("`{name}` is set by the gateway or reserved by gRPC"),
                ));
            }
        }
    }
    Ok(())
}

impl Settings {
    /// Every method callable without a token.
    pub fn public_methods(&self) -> foldhash::HashSet<String> {
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
    fn upstream_header_lists_come_from_comma_separated_variables_and_are_checked() {
        let settings = from_env(&[
            (
                "GATEWAY__USERS__FORWARD_REQUEST_HEADERS",
                "X-Tenant,x-region",
            ),
            (
                "GATEWAY__ORDERS__FORWARD_RESPONSE_METADATA",
                "x-stock-source",
            ),
            ("GATEWAY__ORDERS__COMPRESSION", "gzip"),
            ("GATEWAY__ORDERS__JSON__EMIT_UNPOPULATED", "true"),
            ("GATEWAY__ORDERS__JSON__UNKNOWN_QUERY_PARAMETERS", "ignore"),
        ])
        .unwrap();
        let users = &settings.users.options;
        assert_eq!(users.forward_request_headers, ["X-Tenant", "x-region"]);
        let orders = &settings.orders.options;
        assert_eq!(orders.forward_response_metadata, ["x-stock-source"]);
        assert_eq!(orders.compression, GrpcCompression::Gzip);
        assert!(orders.json.emit_unpopulated);
        assert_eq!(
            orders.json.unknown_query_parameters,
            UnknownQueryParameters::Ignore
        );

        let cases = [
            (
                "GATEWAY__USERS__FORWARD_REQUEST_HEADERS",
                "x tenant",
                "users.forward_request_headers",
            ),
            (
                "GATEWAY__USERS__FORWARD_REQUEST_HEADERS",
                "Authorization",
                "users.forward_request_headers",
            ),
            (
                "GATEWAY__ORDERS__FORWARD_RESPONSE_METADATA",
                "grpc-status",
                "orders.forward_response_metadata",
            ),
            (
                "GATEWAY__ORDERS__COMPRESSION",
                "zip",
                "unknown variant `zip`, expected `none` or `gzip` for key `orders`",
            ),
            (
                "GATEWAY__USERS__JSON__UNKNOWN_QUERY_PARAMETERS",
                "drop",
                "unknown variant `drop`, expected `reject` or `ignore` for key `users`",
            ),
        ];
        for (variable, value, key) in cases {
            let err = from_env(&[(variable, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{value}: {err}");
        }
    }

    #[test]
    fn an_upstreams_entry_takes_the_same_options_and_no_unknown_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        let entry = r#"
            [[upstreams]]
            descriptor_set = "/etc/gateway/inventory.binpb"
            services = ["inventory.v1"]
            url = "http://inventory:50051"
            forward_request_headers = ["x-tenant"]
            compression = "gzip"
            json = { proto_field_names = true }
        "#;
        std::fs::write(&file, entry).unwrap();
        let settings = Settings::load_from(Sources::new("GATEWAY").with_file(Some(&file))).unwrap();
        let options = &settings.upstreams[0].options;
        assert_eq!(options.forward_request_headers, ["x-tenant"]);
        assert_eq!(options.compression, GrpcCompression::Gzip);
        assert!(options.json.proto_field_names);

        let cases = [
            (entry.replace("compression", "compresion"), "compresion"),
            (
                entry.replace("x-tenant", "x-request-id"),
                "upstreams[0].forward_request_headers",
            ),
        ];
        for (bad, key) in cases {
            std::fs::write(&file, bad).unwrap();
            let err = Settings::load_from(Sources::new("GATEWAY").with_file(Some(&file)))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn cors_origins_and_public_methods_come_from_comma_separated_variables() {
        let settings = from_env(&[
            (
                "GATEWAY__CORS__ALLOWED_ORIGINS",
                "https://app.example.com, https://admin.example.com",
            ),
            (
                "GATEWAY__AUTH__PUBLIC_METHODS",
                "users.v1.UserService/CreateToken,users.v1.UserService/GetJwks",
            ),
        ])
        .unwrap();
        assert_eq!(
            settings.cors.allowed_origins,
            ["https://app.example.com", "https://admin.example.com"]
        );
        assert_eq!(
            settings.auth.public_methods,
            [
                "users.v1.UserService/CreateToken",
                "users.v1.UserService/GetJwks"
            ]
        );
        // Set, the variable replaces the default list rather than adding to it.
        assert!(
            !settings
                .public_methods()
                .contains("users.v1.UserService/CreateUser")
        );
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
