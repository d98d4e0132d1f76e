//! The keys of the users service: the one that signs new tokens, the retired ones
//! still accepted during a rotation, and the JWK set published to other services.

use std::sync::Arc;
use std::time::Duration;

use platform_auth::{Jwk, KeyError, SigningKey, TokenIssuer, TokenSettings, Verifier};

use crate::settings::AuthSettings;

/// What the service signs and verifies with.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Signs new tokens with the current key.
    pub issuer: Arc<TokenIssuer>,
    /// Verifies tokens signed by the current or a retired key.
    pub verifier: Arc<Verifier>,
    /// The public keys, current first, as `GetJwks` publishes them.
    pub jwks: Arc<[Jwk]>,
}

impl Keys {
    /// Loads the keys the settings name; generates the signing key if allowed and
    /// missing.
    pub fn load(settings: &AuthSettings) -> Result<Self, KeyError> {
        let signing = if settings.generate_signing_key {
            SigningKey::load_or_generate(&settings.signing_key_file)?
        } else {
            SigningKey::load(&settings.signing_key_file)?
        };
        let mut jwks = vec![signing.public_jwk()];
        for path in &settings.retired_key_files {
            let retired = SigningKey::load(path)?;
            if !jwks
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(retired.kid()))
            {
                jwks.push(retired.public_jwk());
            }
        }
        let verifier = Verifier::new(
            jwks.clone(),
            &settings.verification.issuer,
            &settings.verification.audience,
        )?
        .with_leeway(settings.verification.leeway())
        .with_cache(platform_auth::VERIFIED_TOKENS_CACHED);
        let issuer = TokenIssuer::new(
            signing,
            TokenSettings {
                issuer: settings.verification.issuer.clone(),
                audience: settings.verification.audience.clone(),
                ttl: Duration::from_secs(settings.token_ttl_secs),
            },
        );
        Ok(Self {
            issuer: Arc::new(issuer),
            verifier: Arc::new(verifier),
            jwks: jwks.into(),
        })
    }
}
