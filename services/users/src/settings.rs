//! The users service's settings: built-in defaults for the embedded run, then
//! `--config FILE`, then `USERS__…` environment variables (see `platform-config`).

use std::path::PathBuf;

use platform_auth::VerificationSettings;
pub use platform_config::Layered;
use platform_config::{ConfigError, require_positive};
use platform_db::Migrations;
use platform_kernel::{Embedded, OwnSettings, ServiceSettings};
use platform_proto::users::v1::user_service_server;
use serde::{Deserialize, Serialize};

/// Every setting of the users service.
pub type Settings = ServiceSettings<Own>;

/// The users service's own sections, beside the shared ones of [`ServiceSettings`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Own {
    /// Access tokens and the keys that sign them.
    pub auth: AuthSettings,
    /// The cost of password hashing.
    pub password: PasswordSettings,
    /// Limits on failed sign-ins.
    pub sign_in: SignInSettings,
}

/// The `[auth]` section: the claims every service checks, and the keys that sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `issuer` and `audience` of issued tokens, checked on every verification, and
    /// the clock skew tolerated (`key_refresh_interval_secs` has no use here: users
    /// verifies with its own keys).
    #[serde(flatten)]
    pub verification: VerificationSettings,
    /// How long an access token is valid, in seconds. Short, since a token cannot be
    /// recalled once issued: clients refresh it with their refresh token.
    pub token_ttl_secs: u64,
    /// How long a refresh token is valid, in seconds; each refresh issues a new one
    /// with a fresh lifetime, so a session in use never ends on its own.
    pub refresh_token_ttl_secs: u64,
    /// The Ed25519 private key (PKCS#8 PEM) that signs new tokens.
    pub signing_key_file: PathBuf,
    /// Generate the signing key file when it does not exist. Right for the embedded
    /// run; deployments mount the key from a secret and turn this off so a missing
    /// secret is an error rather than a fresh key per pod.
    pub generate_signing_key: bool,
    /// Keys that no longer sign but whose tokens are still accepted and whose public
    /// halves are still published: the previous key during a rotation.
    pub retired_key_files: Vec<PathBuf>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            verification: VerificationSettings::default(),
            token_ttl_secs: 300,
            refresh_token_ttl_secs: 30 * 24 * 60 * 60,
            signing_key_file: PathBuf::from("data/users-signing-key.pem"),
            generate_signing_key: true,
            retired_key_files: Vec::new(),
        }
    }
}

/// The `[password]` section: Argon2id cost parameters (OWASP's recommended minimum by
/// default). Stored hashes carry their own parameters, so raising these later does
/// not lock anyone out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes computed at once; further sign-ups and sign-ins wait. Bounds the memory
    /// (`memory_kib` each) and keeps hashing from starving other work.
    pub max_concurrent: usize,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            // Half the CPUs: a flood of sign-ins then leaves the other half to every
            // other call (`make bench` measures their p99 during one).
            max_concurrent: std::thread::available_parallelism()
                .map_or(1, |cpus| (usize::from(cpus) / 2).max(1)),
        }
    }
}

/// The `[sign_in]` section: how repeated failed sign-ins for one email slow down
/// further attempts (see [`crate::sessions::SignInLimits`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInSettings {
    /// Consecutive failures for one email before it is locked.
    pub max_failures: u32,
    /// The first lock-out, in seconds; each further failure doubles it.
    pub lockout_secs: u64,
    /// The longest lock-out, in seconds.
    pub max_lockout_secs: u64,
}

impl Default for SignInSettings {
    fn default() -> Self {
        // Five typos cost a person half a minute; a guesser gets about four tries an
        // hour per account once the cap is reached.
        Self {
            max_failures: 5,
            lockout_secs: 30,
            max_lockout_secs: 15 * 60,
        }
    }
}

impl OwnSettings for Own {
    const GRPC_SERVICE: &'static str = user_service_server::SERVICE_NAME;
    const MIGRATIONS: Migrations = crate::store::MIGRATIONS;
    const ENV_PREFIX: &'static str = "USERS";
    const ENV_LISTS: &'static [&'static str] = &["auth.retired_key_files"];
    const EMBEDDED: Embedded = Embedded {
        grpc_port: 50051,
        admin_port: 9101,
        database_url: "sqlite://data/users.db",
    };

    fn validate(settings: &Settings) -> Result<(), ConfigError> {
        require_positive("auth.token_ttl_secs", settings.auth.token_ttl_secs)?;
        require_positive(
            "auth.refresh_token_ttl_secs",
            settings.auth.refresh_token_ttl_secs,
        )?;
        require_positive(
            "sign_in.max_failures",
            u64::from(settings.sign_in.max_failures),
        )?;
        require_positive("sign_in.lockout_secs", settings.sign_in.lockout_secs)?;
        if settings.sign_in.max_lockout_secs < settings.sign_in.lockout_secs {
            return Err(ConfigError::rule(
                "sign_in.max_lockout_secs",
                "must be at least sign_in.lockout_secs",
            ));
        }
        settings.auth.verification.validate("auth")?;
        require_positive(
            "password.max_concurrent",
            settings.password.max_concurrent as u64,
        )?;
        crate::password::params(settings)
            .map_err(|e| ConfigError::rule("password", e.to_string()))?;
        Ok(())
    }
}

/// Settings for a throwaway instance: both ports picked by the system on loopback,
/// the database at `database_url`, the signing key in `key_file` (made on first start),
/// and the cheapest password hashing. For tests and local experiments; cheap hashes
/// are no protection for real passwords.
pub fn throwaway(database_url: &str, key_file: std::path::PathBuf) -> Settings {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut settings = Settings::default();
    settings.grpc.addr = loopback;
    settings.admin.addr = loopback;
    settings.database.url = database_url.to_owned();
    settings.auth.signing_key_file = key_file;
    settings.password.memory_kib = 1024;
    settings.password.iterations = 1;
    settings
}

#[cfg(test)]
mod tests {
    use platform_config::Sources;

    use super::*;

    /// The shared verification settings sit flattened in `[auth]`: their keys and
    /// users' own are where the README says, typed from environment strings, and a
    /// misspelt one is still an error.
    #[test]
    fn auth_keys_keep_their_names() {
        let settings = Settings::load_from(Sources::new("USERS").with_env([
            ("USERS__AUTH__ISSUER", "issuer-x"),
            ("USERS__AUTH__CLOCK_SKEW_SECS", "5"),
            ("USERS__AUTH__TOKEN_TTL_SECS", "600"),
            ("USERS__AUTH__GENERATE_SIGNING_KEY", "false"),
        ]))
        .unwrap();
        assert_eq!(settings.auth.verification.issuer, "issuer-x");
        assert_eq!(settings.auth.verification.clock_skew_secs, 5);
        assert_eq!(settings.auth.token_ttl_secs, 600);
        assert!(!settings.auth.generate_signing_key);

        let settings = Settings::load_from(Sources::new("USERS").with_env([
            ("USERS__AUTH__REFRESH_TOKEN_TTL_SECS", "3600"),
            ("USERS__SIGN_IN__MAX_FAILURES", "3"),
        ]))
        .unwrap();
        assert_eq!(settings.auth.refresh_token_ttl_secs, 3600);
        assert_eq!(settings.sign_in.max_failures, 3);
        let error = Settings::load_from(Sources::new("USERS").with_env([
            ("USERS__SIGN_IN__LOCKOUT_SECS", "60"),
            ("USERS__SIGN_IN__MAX_LOCKOUT_SECS", "30"),
        ]))
        .unwrap_err();
        assert!(
            error.to_string().contains("sign_in.max_lockout_secs"),
            "{error}"
        );

        let error =
            Settings::load_from(Sources::new("USERS").with_env([("USERS__AUTH__CLOCK_SKEW", "5")]))
                .unwrap_err();
        assert!(error.to_string().contains("clock_skew"), "{error}");

        let error =
            Settings::load_from(Sources::new("USERS").with_env([("USERS__AUTH__AUDIENCE", "")]))
                .unwrap_err();
        assert!(error.to_string().contains("auth.audience"), "{error}");
    }

    /// A deployment mounts retired keys from a Secret and names them in one variable.
    #[test]
    fn retired_key_files_come_from_one_comma_separated_variable() {
        let settings = Settings::load_from(Sources::new("USERS").with_env([(
            "USERS__AUTH__RETIRED_KEY_FILES",
            "/var/run/secrets/users/retired/2024.pem, /var/run/secrets/users/retired/2025.pem",
        )]))
        .unwrap();
        assert_eq!(
            settings.auth.retired_key_files,
            [
                PathBuf::from("/var/run/secrets/users/retired/2024.pem"),
                PathBuf::from("/var/run/secrets/users/retired/2025.pem"),
            ]
        );

        let none = Settings::load_from(
            Sources::new("USERS").with_env([("USERS__AUTH__RETIRED_KEY_FILES", "")]),
        )
        .unwrap();
        assert!(none.auth.retired_key_files.is_empty());
    }
}
