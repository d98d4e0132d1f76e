//! Issuing access tokens: the `users` service signs a short-lived EdDSA JWT for a
//! subject and role with its private key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};

use crate::caller::Role;
use crate::claims::IssuedClaims;
use crate::clock::{Clock, SystemClock};
use crate::keys::{Jwk, KeyError, SigningKey};

/// What the issuer writes into every token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// The `iss` claim; verifiers must expect the same value.
    pub issuer: String,
    /// The `aud` claim; verifiers must expect the same value.
    pub audience: String,
    /// How long a token is valid, counted in whole seconds.
    pub ttl: Duration,
}

/// A freshly signed access token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// How long from now the token is valid.
    pub expires_in: Duration,
}

// The token is a credential: it must never reach a log through `{:?}`.
impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Signs access tokens with one [`SigningKey`].
pub struct TokenIssuer {
    key: SigningKey,
    header: Header,
    settings: TokenSettings,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.key.kid())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer signing with `key` and writing `settings` into each token.
    pub fn new(key: SigningKey, settings: TokenSettings) -> Self {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid().to_owned());
        TokenIssuer {
            key,
            header,
            settings,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the issue time from `clock` instead of the system's (tests that need a
    /// token to expire move a [`crate::ManualClock`] instead of sleeping).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Signs a token for `subject` with `role`: header `alg` EdDSA, `typ` JWT and the
    /// key's `kid`; claims `iss`, `aud`, `sub`, `role`, `iat`, `nbf`, `exp` and a
    /// random `jti`.
    pub fn issue(&self, subject: &str, role: Role) -> Result<IssuedToken, KeyError> {
        // Built per call rather than kept: jsonwebtoken re-parses the key on every
        // signature anyway, and this keeps a single copy of the secret in the issuer.
        let encoding_key = self.key.encoding_key()?;
        let ttl_secs = self.settings.ttl.as_secs();
        let now = self.clock.unix_now();
        let claims = IssuedClaims {
            iss: &self.settings.issuer,
            aud: &self.settings.audience,
            sub: subject,
            role,
            iat: now,
            nbf: now,
            exp: now.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX)),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let access_token = jsonwebtoken::encode(&self.header, &claims, &encoding_key)
            .map_err(KeyError::Signing)?;
        Ok(IssuedToken {
            access_token,
            expires_in: Duration::from_secs(ttl_secs),
        })
    }

    /// The public key of the signing key, for the JWK set verifiers fetch.
    pub fn public_jwk(&self) -> Jwk {
        self.key.public_jwk()
    }

    /// The key id written into every token's header.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The settings written into every token.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }
}
