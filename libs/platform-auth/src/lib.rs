//! Access tokens for the platform.
//!
//! The `users` service issues them with an Ed25519 private key ([`SigningKey`],
//! [`TokenIssuer`]); every service verifies them against a JWK set ([`Verifier`],
//! optionally refreshed from a [`KeySource`] on key rotation); and [`AuthLayer`] on
//! each gRPC server turns an `authorization: Bearer <jwt>` header into a [`Caller`]
//! that handlers read with [`require_caller`]. [`VerificationSettings`] is the one
//! configuration of what a token must say, shared by every service.
//!
//! Tokens are compact JWS with header `alg: EdDSA`, `typ: JWT` and `kid` (the key's
//! RFC 7638 thumbprint), and claims `iss`, `aud`, `sub`, `role` (`"user"` or
//! `"admin"`), `iat`, `nbf`, `exp` and `jti`.

mod caller;
mod claims;
mod clock;
mod issuer;
mod keys;
pub mod layer;
mod settings;
pub mod users_jwks;
mod verifier;

pub use caller::{BearerToken, Caller, Role};
pub use clock::{Clock, ManualClock, SystemClock};
pub use issuer::{IssuedToken, TokenIssuer, TokenSettings};
pub use keys::{Jwk, KeyError, SigningKey, jwk_from_proto, jwk_to_proto};
pub use layer::{AuthLayer, bearer_token, require_caller};
pub use settings::VerificationSettings;
pub use verifier::{
    DEFAULT_LEEWAY, KeySource, KeySourceError, VERIFIED_TOKENS_CACHED, Verifier, VerifyError,
};
