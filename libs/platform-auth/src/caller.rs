//! Who is calling: the identity a verified access token carries, and the raw
//! token kept alongside it so a service can forward it to the services it calls.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a caller may do. Carried in the token's `role` claim as `"user"` or `"admin"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary signed-up user.
    User,
    /// An operator allowed to act on other users' data.
    Admin,
}

impl Role {
    /// The claim value: `"user"` or `"admin"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified identity of the caller of an RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub` claim: the user id.
    pub subject: String,
    /// The token's `role` claim.
    pub role: Role,
}

impl Caller {
    /// Whether the caller has the [`Role::Admin`] role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The raw bearer token of the call, kept so a service can forward it downstream.
#[derive(Clone)]
pub struct BearerToken(pub String);

impl BearerToken {
    /// The token text, without the `Bearer ` prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

// The token is a credential: it must never reach a log through `{:?}`.
impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}
