//! Sessions: the refresh tokens that outlive short access tokens, and the limit on
//! failed sign-ins.
//!
//! A refresh token is 256 random bits, base64url without padding. The service keeps
//! only its SHA-256 ([`RefreshTokenHash`]): a copy of the database does not hand out
//! sessions, and the token is long and random enough that a fast hash is enough (no
//! salt or stretching, unlike passwords). Tokens form a *family* started at sign-in;
//! each refresh retires the token presented and issues the next one in the family, so
//! a retired token presented again means two parties hold the session, and the
//! family ends (reuse detection, OAuth 2.0 Security BCP §4.14).
//!
//! [`SignInLimits`] is the policy for repeated failures: after `max_failures`
//! consecutive failures for one email, that email is locked for a window that
//! doubles with each further failure, up to a cap. The counters live in the database,
//! so every replica enforces the same limit.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::settings::SignInSettings;

/// Random bytes in a refresh token.
const TOKEN_BYTES: usize = 32;

/// A refresh token as the client holds it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0_u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token a client sent, if it has the shape of one of ours. Anything else can
    /// never match a stored hash.
    pub fn parse(value: &str) -> Option<Self> {
        let decoded = URL_SAFE_NO_PAD.decode(value.trim()).ok()?;
        (decoded.len() == TOKEN_BYTES).then(|| Self(value.trim().to_owned()))
    }

    /// The token text, for the response only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps of it.
    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The SHA-256 of a refresh token: its key in the database.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshTokenHash {
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenHash(<redacted>)")
    }
}

/// The sign-in limiting policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// Consecutive failures allowed before the email is locked.
    pub max_failures: u32,
    /// The first lock-out; each further failure doubles it.
    pub lockout: Duration,
    /// The longest lock-out.
    pub max_lockout: Duration,
}

impl SignInLimits {
    /// A failure longer ago than this starts the count again: a few typos months
    /// apart never add up to a lock-out.
    pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

    /// The policy the settings describe.
    pub fn from_settings(settings: &SignInSettings) -> Self {
        Self {
            max_failures: settings.max_failures,
            lockout: Duration::from_secs(settings.lockout_secs),
            max_lockout: Duration::from_secs(settings.max_lockout_secs),
        }
    }

    /// How long an email is locked after `failures` consecutive failures, counted
    /// from the last one; `None` while under the limit.
    pub fn lockout_after(&self, failures: u64) -> Option<Duration> {
        let extra = failures.checked_sub(u64::from(self.max_failures))?;
        let factor = 2_u32.checked_pow(u32::try_from(extra).unwrap_or(u32::MAX));
        let lockout = factor.and_then(|f| self.lockout.checked_mul(f));
        Some(lockout.map_or(self.max_lockout, |l| l.min(self.max_lockout)))
    }

    /// How long from `now` an email with `failures`, the last at `last_failure_at`,
    /// stays locked; `None` when it may try now. Times are Unix seconds.
    pub fn retry_after(&self, failures: u64, last_failure_at: i64, now: i64) -> Option<Duration> {
        let lockout = self.lockout_after(failures)?;
        let until = last_failure_at.saturating_add(i64::try_from(lockout.as_secs()).ok()?);
        let left = until.checked_sub(now).filter(|left| *left > 0)?;
        Some(Duration::from_secs(u64::try_from(left).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_256_bits_and_round_trip() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43, "32 bytes in unpadded base64url");
        assert_eq!(RefreshToken::parse(a.expose()).unwrap().hash(), a.hash());
        assert_ne!(a.hash(), b.hash());
        assert!(RefreshToken::parse("not a token").is_none());
        assert!(RefreshToken::parse(&URL_SAFE_NO_PAD.encode([0_u8; 16])).is_none());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn lockouts_double_per_failure_up_to_the_cap() {
        let limits = SignInLimits {
            max_failures: 5,
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(900),
        };
        let secs = |failures| limits.lockout_after(failures).map(|d| d.as_secs());
        assert_eq!(secs(4), None);
        assert_eq!(secs(5), Some(30));
        assert_eq!(secs(6), Some(60));
        assert_eq!(secs(9), Some(480));
        assert_eq!(secs(10), Some(900));
        assert_eq!(secs(500), Some(900));
        assert_eq!(
            limits.retry_after(5, 1000, 1010),
            Some(Duration::from_secs(20))
        );
        assert_eq!(limits.retry_after(5, 1000, 1030), None);
        assert_eq!(limits.retry_after(4, 1000, 1000), None);
    }
}
