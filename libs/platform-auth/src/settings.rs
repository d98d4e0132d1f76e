//! What a token must say to be accepted, as every service configures it.
//!
//! One type for all three services, so `issuer`, `audience`, `clock_skew_secs` and
//! `key_refresh_interval_secs` mean the same everywhere. A service whose `[auth]`
//! section has more (users' signing keys, the gateway's public methods) embeds it with
//! `#[serde(flatten)]`, so the keys stay where they are: `auth.issuer`,
//! `USERS__AUTH__CLOCK_SKEW_SECS`.

use std::sync::Arc;
use std::time::Duration;

use platform_config::InvalidSetting;
use serde::{Deserialize, Serialize};

use crate::{KeySource, VERIFIED_TOKENS_CACHED, Verifier};

/// The verification half of an `[auth]` section.
///
/// No `deny_unknown_fields` here: serde cannot combine it with `flatten`; the
/// embedding section denies unknown keys for both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerificationSettings {
    /// The expected `iss` claim (users: the one it issues).
    pub issuer: String,
    /// The expected `aud` claim (users: the one it issues).
    pub audience: String,
    /// Clock difference tolerated between issuer and verifier on `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// Least time between two key-set fetches triggered by unknown key ids, so forged
    /// tokens cannot flood the users service.
    pub key_refresh_interval_secs: u64,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        Self {
            issuer: "platform-users".to_owned(),
            audience: "platform".to_owned(),
            clock_skew_secs: 30,
            key_refresh_interval_secs: 10,
        }
    }
}

impl VerificationSettings {
    /// Checks the rules the types do not express; `section` prefixes the key named in
    /// the error (`auth`).
    pub fn validate(&self, section: &str) -> Result<(), InvalidSetting> {
        let empty = |field| InvalidSetting::new(section, field, "must not be empty");
        if self.issuer.is_empty() {
            return Err(empty("issuer"));
        }
        if self.audience.is_empty() {
            return Err(empty("audience"));
        }
        Ok(())
    }

    /// The clock skew tolerated.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.clock_skew_secs)
    }

    /// A verifier of these claims whose keys come from `source` (refreshed at most
    /// every `key_refresh_interval_secs` on an unknown key id), with the verified-token
    /// cache.
    pub fn verifier(&self, source: Arc<dyn KeySource>) -> Verifier {
        Verifier::with_source(
            source,
            Duration::from_secs(self.key_refresh_interval_secs),
            &self.issuer,
            &self.audience,
        )
        .with_leeway(self.leeway())
        .with_cache(VERIFIED_TOKENS_CACHED)
    }
}
