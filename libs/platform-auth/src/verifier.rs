//! Verifying access tokens against a JWK set, optionally refreshed from a
//! [`KeySource`] when a token names a key id the verifier does not know yet.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::caller::Caller;
use crate::claims::ReceivedClaims;
use crate::clock::{Clock, SystemClock};
use crate::keys::{ALG_EDDSA, Jwk, KeyError, decoding_key};

/// Clock skew tolerated on `exp` and `nbf` unless [`Verifier::with_leeway`] says otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Tokens longer than this are rejected before any parsing; ours are a few hundred bytes.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was rejected. The messages are safe to return to a client: they
/// contain nothing from the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, bad base64 or JSON, no `kid`, or a missing or unknown claim such as `role`.
    #[error("invalid access token: malformed")]
    Malformed,
    /// The header names an algorithm other than EdDSA (including `none`).
    #[error("invalid access token: unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The `kid` is not in the key set, even after a refresh when a source is set.
    #[error("invalid access token: unknown signing key")]
    UnknownKey,
    /// The signature does not match the header and claims.
    #[error("invalid access token: bad signature")]
    BadSignature,
    /// `exp` is in the past by more than the leeway.
    #[error("invalid access token: expired")]
    Expired,
    /// `nbf` is in the future by more than the leeway.
    #[error("invalid access token: not yet valid")]
    NotYetValid,
    /// `iss` is not the expected issuer.
    #[error("invalid access token: wrong issuer")]
    WrongIssuer,
    /// `aud` does not name the expected audience.
    #[error("invalid access token: wrong audience")]
    WrongAudience,
    /// The `kid` is unknown and the key source could not be reached.
    #[error("cannot verify access token: signing keys unavailable")]
    KeysUnavailable,
}

/// The key source failed; the message is for logs.
#[derive(Debug, thiserror::Error)]
#[error("key source unavailable: {0}")]
pub struct KeySourceError(pub String);

/// Where a [`Verifier`] gets fresh keys when a token names a kid it does not know
/// (key rotation). `users` implements it over its own keys; other services over the
/// `users` service's `GetJwks` RPC.
///
/// Implementations should bound how long `fetch` takes (a request deadline, say):
/// verifications of unknown kids wait for it.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The current JWK set. It replaces the verifier's keys, so keys missing from it
    /// stop being accepted.
    async fn fetch(&self) -> Result<Vec<Jwk>, KeySourceError>;
}

type KeySet = HashMap<String, DecodingKey>;

fn key_set(keys: &[Jwk]) -> Result<KeySet, KeyError> {
    keys.iter().map(decoding_key).collect()
}

struct Refresher {
    source: Arc<dyn KeySource>,
    min_interval: Duration,
    // An async mutex because it is held across the fetch: that is how concurrent
    // misses end up sharing one fetch instead of each starting their own.
    state: tokio::sync::Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    last_failed: bool,
}

/// How many verified tokens a service remembers by default (a few MiB at most).
pub const VERIFIED_TOKENS_CACHED: u64 = 10_000;

/// Verifies access tokens. `Send + Sync`; share it behind an `Arc`.
pub struct Verifier {
    // Swapped whole on replacement so a reader never sees a half-updated set and the
    // lock is held only for a pointer copy.
    keys: RwLock<Arc<KeySet>>,
    issuer: String,
    audience: String,
    leeway_secs: i64,
    validation: Validation,
    refresher: Option<Refresher>,
    /// Tokens already verified, so a caller's every request does not pay for a
    /// signature check. An entry is used only while the token is unexpired and its key
    /// is still in the set.
    /// Keyed with a seeded fast hash: a token is hundreds of bytes, hashed on every
    /// request, and SipHash's strength buys nothing a random seed does not here.
    cache: Option<moka::sync::Cache<String, Arc<Verified>, foldhash::fast::RandomState>>,
    /// What "now" is for `exp` and `nbf`.
    clock: Arc<dyn Clock>,
}

/// A verified token, remembered.
#[derive(Debug)]
struct Verified {
    caller: Caller,
    kid: String,
    /// `exp` plus the leeway: from then on the token is refused.
    valid_until: i64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<String> = self.current_keys().keys().cloned().collect();
        kids.sort();
        f.debug_struct("Verifier")
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field(
                "min_refresh_interval",
                &self.refresher.as_ref().map(|r| r.min_interval),
            )
            .finish()
    }
}

impl Verifier {
    fn build(keys: KeySet, issuer: String, audience: String, refresher: Option<Refresher>) -> Self {
        // jsonwebtoken only checks the signature and algorithm here; the claims are
        // checked in `check_claims`, which gives each failure its own error.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Verifier {
            keys: RwLock::new(Arc::new(keys)),
            issuer,
            audience,
            leeway_secs: duration_secs(DEFAULT_LEEWAY),
            validation,
            refresher,
            cache: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Verifies against a fixed set of keys. Fails if any key is not an Ed25519
    /// signature JWK.
    pub fn new(
        keys: Vec<Jwk>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, KeyError> {
        Ok(Self::build(
            key_set(&keys)?,
            issuer.into(),
            audience.into(),
            None,
        ))
    }

    /// Also asks `source` for keys when a token names an unknown kid, at most once per
    /// `min_refresh_interval` (so forged kids cannot flood the source); concurrent
    /// verifications that miss share one fetch. Starts with an empty set; the first
    /// unknown kid triggers the first fetch.
    ///
    /// Within `min_refresh_interval` of a fetch, unknown kids are rejected without
    /// asking again: with [`VerifyError::KeysUnavailable`] if that fetch failed, with
    /// [`VerifyError::UnknownKey`] otherwise. Non-Ed25519 keys in a fetched set are
    /// skipped with a warning.
    pub fn with_source(
        source: Arc<dyn KeySource>,
        min_refresh_interval: Duration,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let refresher = Refresher {
            source,
            min_interval: min_refresh_interval,
            state: tokio::sync::Mutex::new(RefreshState::default()),
        };
        Self::build(
            KeySet::new(),
            issuer.into(),
            audience.into(),
            Some(refresher),
        )
    }

    /// Sets the clock skew tolerated on `exp` and `nbf` (default [`DEFAULT_LEEWAY`]).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = duration_secs(leeway);
        self
    }

    /// Checks `exp` and `nbf` against `clock` instead of the system's (tests of expiry
    /// move a [`crate::ManualClock`] instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the key set. Fails, leaving the set unchanged, if any key is not an
    /// Ed25519 signature JWK.
    pub fn replace_keys(&self, keys: Vec<Jwk>) -> Result<(), KeyError> {
        let set = key_set(&keys)?;
        self.install(set);
        Ok(())
    }

    /// Verifies `token` (the compact JWT, without `Bearer `) and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Caller, VerifyError> {
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.get(token)
        {
            if self.clock.unix_now() < hit.valid_until && self.current_keys().contains_key(&hit.kid)
            {
                return Ok(hit.caller.clone());
            }
            cache.invalidate(token);
        }
        let kid = parse_header(token)?;
        let key = match self.lookup(&kid) {
            Some(key) => key,
            None => self.refresh_for(&kid).await?,
        };
        let data = jsonwebtoken::decode::<ReceivedClaims>(token, &key, &self.validation)
            .map_err(|e| map_jwt_error(e.kind()))?;
        let (caller, valid_until) = self.check_claims(data.claims)?;
        if let Some(cache) = &self.cache {
            cache.insert(
                token.to_owned(),
                Arc::new(Verified {
                    caller: caller.clone(),
                    kid,
                    valid_until,
                }),
            );
        }
        Ok(caller)
    }

    /// Remembers up to `capacity` verified tokens (each for at most five minutes and
    /// never past its expiry or its key's removal), so repeated calls with one token
    /// skip the signature check.
    pub fn with_cache(mut self, capacity: u64) -> Self {
        self.cache = Some(
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(Duration::from_secs(300))
                .build_with_hasher(foldhash::fast::RandomState::default()),
        );
        self
    }

    /// The caller, and the time (`exp` + leeway) from which the token is refused.
    fn check_claims(&self, claims: ReceivedClaims) -> Result<(Caller, i64), VerifyError> {
        if claims.iss != self.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(VerifyError::WrongAudience);
        }
        let now = self.clock.unix_now();
        // RFC 7519 §4.1.4: the token must not be accepted on or after `exp`.
        if now >= claims.exp.saturating_add(self.leeway_secs) {
            return Err(VerifyError::Expired);
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(self.leeway_secs)
        {
            return Err(VerifyError::NotYetValid);
        }
        if claims.sub.is_empty() {
            return Err(VerifyError::Malformed);
        }
        Ok((
            Caller {
                subject: claims.sub,
                role: claims.role,
            },
            claims.exp.saturating_add(self.leeway_secs),
        ))
    }

    fn current_keys(&self) -> Arc<KeySet> {
        // A poisoned lock still holds a whole, valid set (writers only swap an Arc),
        // so there is no reason to fail requests over it.
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    fn install(&self, set: KeySet) {
        let mut guard = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(set);
    }

    fn lookup(&self, kid: &str) -> Option<DecodingKey> {
        self.current_keys().get(kid).cloned()
    }

    async fn refresh_for(&self, kid: &str) -> Result<DecodingKey, VerifyError> {
        let Some(refresher) = &self.refresher else {
            return Err(VerifyError::UnknownKey);
        };
        let mut state = refresher.state.lock().await;
        // Whoever held the lock before may have fetched the key we are missing.
        if let Some(key) = self.lookup(kid) {
            return Ok(key);
        }
        if let Some(at) = state.last_attempt
            && at.elapsed() < refresher.min_interval
        {
            return Err(if state.last_failed {
                VerifyError::KeysUnavailable
            } else {
                VerifyError::UnknownKey
            });
        }
        // Recorded before the fetch, as a failure until it succeeds: a caller that gives
        // up mid-fetch must still count against the rate limit.
        state.last_attempt = Some(Instant::now());
        state.last_failed = true;
        match refresher.source.fetch().await {
            Ok(jwks) => {
                self.install(self.usable_keys(jwks));
                state.last_failed = false;
                tracing::debug!("refreshed token verification keys");
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot refresh token verification keys");
                return Err(VerifyError::KeysUnavailable);
            }
        }
        self.lookup(kid).ok_or(VerifyError::UnknownKey)
    }

    /// Keeps the Ed25519 keys of a fetched set; one odd key must not lock out the rest.
    fn usable_keys(&self, jwks: Vec<Jwk>) -> KeySet {
        jwks.iter()
            .filter_map(|jwk| match decoding_key(jwk) {
                Ok(key) => Some(key),
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring a fetched verification key");
                    None
                }
            })
            .collect()
    }
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The header members the verifier decides on before touching a key.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Checks the token's shape and algorithm and returns its `kid`.
///
/// Done here rather than by jsonwebtoken because jsonwebtoken cannot parse a header
/// whose `alg` it does not know (such as `none`), which would make an unsupported
/// algorithm indistinguishable from garbage.
fn parse_header(token: &str) -> Result<String, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&header).map_err(|_| VerifyError::Malformed)?;
    if header.alg != ALG_EDDSA {
        return Err(VerifyError::UnsupportedAlgorithm);
    }
    // RFC 7515 §4.1.11: extensions marked critical must be understood; we know none.
    if header.crit.is_some() {
        return Err(VerifyError::Malformed);
    }
    match header.kid {
        Some(kid) if !kid.is_empty() => Ok(kid),
        _ => Err(VerifyError::Malformed),
    }
}

fn map_jwt_error(kind: &ErrorKind) -> VerifyError {
    match kind {
        ErrorKind::InvalidSignature => VerifyError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => VerifyError::UnsupportedAlgorithm,
        // Claims are checked by `check_claims`; these stay mapped in case that changes.
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
        ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
        ErrorKind::InvalidAudience => VerifyError::WrongAudience,
        _ => VerifyError::Malformed,
    }
}
