//! The JWT claim set of a platform access token, as written by the issuer and
//! read back by the verifier.

use serde::{Deserialize, Serialize};

use crate::caller::Role;

/// Claims as the issuer writes them.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) aud: &'a str,
    pub(crate) sub: &'a str,
    pub(crate) role: Role,
    pub(crate) iat: i64,
    pub(crate) nbf: i64,
    pub(crate) exp: i64,
    pub(crate) jti: String,
}

/// Claims as the verifier reads them. A missing `iss`, `aud`, `sub`, `role` or `exp`
/// (or an unknown role) fails deserialization, which the verifier reports as malformed.
#[derive(Debug, Deserialize)]
pub(crate) struct ReceivedClaims {
    pub(crate) iss: String,
    pub(crate) aud: Audience,
    pub(crate) sub: String,
    pub(crate) role: Role,
    pub(crate) exp: i64,
    #[serde(default)]
    pub(crate) nbf: Option<i64>,
}

/// RFC 7519 allows `aud` to be a single string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub(crate) fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(aud) => aud == audience,
            Audience::Many(auds) => auds.iter().any(|aud| aud == audience),
        }
    }
}
