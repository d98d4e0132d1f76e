//! The users service's domain values, parsed once at the edge of the service.
//!
//! A request is first checked against the rules its proto declares (`buf.validate`:
//! an email address, 1 to 100 visible characters of display name, 8 to 128 of
//! password...), then becomes these types; past that point an `Email` is known to be
//! well-formed and lower-case, a `DisplayName` trimmed and bounded, a `Password` hard
//! to guess and never printable. `Email` and `DisplayName` keep their own checks: they
//! also guard what is read back from the database, which no request rule saw.

use std::fmt;

use chrono::{DateTime, Utc};
pub use platform_api::{FieldViolation, Id};
pub use platform_auth::Role;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// An account id (UUIDv7: sorts by creation time).
pub type UserId = Id<User>;

/// A well-formed email address, NFKC-normalised and lower-cased, so that uniqueness
/// ignores case and the several Unicode spellings of one visible address (`é` as one
/// code point or as `e` plus a combining accent) are one address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The longest address SMTP can carry (RFC 5321).
    pub const MAX_LEN: usize = 254;

    /// Parses `value`, trimming surrounding white space.
    pub fn parse(value: &str) -> Result<Self, FieldViolation> {
        let bad = |why: &str| FieldViolation::new("email", why);
        let normalized: String = value.trim().nfkc().collect();
        let value = normalized.as_str();
        if value.is_empty() {
            return Err(bad("must not be empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(bad("must be at most 254 characters"));
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err(bad("must be an email address like name@example.com"));
        };
        let valid_chars = value.chars().all(|c| !c.is_whitespace() && !c.is_control());
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && !domain.contains('@');
        if local.is_empty() || local.len() > 64 || !domain_ok || !valid_chars || local.contains('@')
        {
            return Err(bad("must be an email address like name@example.com"));
        }
        Ok(Self(value.to_lowercase()))
    }

    /// The address, lower-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name shown to people: trimmed, 1 to 100 characters, nothing invisible: no
/// control characters and no format characters of the Basic Multilingual Plane (bidi
/// overrides that reorder what others see, zero-width characters that hide in a name,
/// and the like; the tags that make up flag emoji, beyond it, are fine), as the
/// request rule's pattern says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Parses `value`.
    pub fn parse(value: &str) -> Result<Self, FieldViolation> {
        let bad = |why: &str| FieldViolation::new("display_name", why);
        let value = value.trim();
        if value.is_empty() {
            return Err(bad("must not be empty"));
        }
        if value.chars().count() > Self::MAX_CHARS {
            return Err(bad("must be at most 100 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(bad("must not contain control characters"));
        }
        if value
            .chars()
            .any(|c| c <= '\u{ffff}' && c.general_category() == GeneralCategory::Format)
        {
            return Err(bad(
                "must not contain invisible formatting characters (bidi controls, zero-width characters)",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password, not easy to guess. Its length (8 to 128 characters) is a rule of the
/// requests that carry one; its strength, which no declared rule can say, is checked
/// here. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Longest password that can be set, in characters (the `max_len` of the request
    /// rules); bounds the hashing work a request can ask for.
    pub const MAX_CHARS: usize = 128;

    /// The lowest zxcvbn score accepted: 3 of 4, "safely unguessable" even if the
    /// hashes leak (the estimator's dictionaries hold the common passwords, names and
    /// words, and the keyboard and date patterns, that guessing starts with).
    pub const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Three;

    /// Parses `value`; the password is taken as given, spaces included.
    pub fn parse(value: &str) -> Result<Self, FieldViolation> {
        Self::parse_for(value, &[])
    }

    /// Parses `value`, also refusing a password built from `context` (the account's
    /// email and display name, say), which a guesser would try first.
    pub fn parse_for(value: &str, context: &[&str]) -> Result<Self, FieldViolation> {
        // Each word of the context too: `Ada Lovelace` makes `lovelace` a guess.
        let words: Vec<&str> = context
            .iter()
            .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
            .filter(|word| word.chars().count() >= 3)
            .chain(context.iter().copied())
            .collect();
        let estimate = zxcvbn::zxcvbn(value, &words);
        if estimate.score() < Self::MIN_SCORE {
            let why = estimate
                .feedback()
                .and_then(|feedback| feedback.warning())
                .map_or_else(
                    || "it follows a common pattern".to_owned(),
                    |warning| warning.to_string().trim_end_matches('.').to_lowercase(),
                );
            return Err(FieldViolation::new(
                "password",
                format!("is too easy to guess: {why}; a few unrelated words make a strong one"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The secret itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// An Argon2id hash in PHC string form. Never leaves the service.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string read from storage or produced by the hasher.
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// The database spelling of a role.
pub fn role_to_db(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

/// A role read from the database; anything unknown is treated as the least privileged.
pub fn role_from_db(value: &str) -> Role {
    match value {
        "admin" => Role::Admin,
        _ => Role::User,
    }
}

/// An account as stored, minus its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its sign-in address.
    pub email: Email,
    /// Its display name.
    pub display_name: DisplayName,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub create_time: DateTime<Utc>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn one_visible_address_is_one_email_however_it_is_spelled() {
        let composed = Email::parse("ren\u{e9}@example.com").unwrap();
        let decomposed = Email::parse("rene\u{301}@example.com").unwrap();
        assert_eq!(composed, decomposed);
        // Compatibility forms (full-width letters) fold too.
        assert_eq!(
            Email::parse("\u{ff21}da@example.com").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@.com",
            "ada@example..com",
            "a@b@c.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn display_names_are_bounded() {
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("bad\u{0007}name").is_err());
        for invisible in ["\u{202e}nimda", "ad\u{200b}a", "ada\u{2066}", "\u{feff}ada"] {
            let refused = DisplayName::parse(invisible).unwrap_err();
            assert!(refused.description.contains("invisible"), "{invisible:?}");
        }
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
    }

    #[test]
    fn guessable_passwords_are_refused_with_a_reason() {
        for weak in ["password", "12345678", "qwertyuiop", "aaaaaaaaaa"] {
            let refused = Password::parse(weak).unwrap_err();
            assert_eq!(refused.field, "password");
            assert!(
                refused.description.starts_with("is too easy to guess: "),
                "{weak}: {}",
                refused.description
            );
        }
        let common = Password::parse("password").unwrap_err();
        assert!(
            common.description.contains("common password"),
            "{}",
            common.description
        );
        // The account's own email: fine for a stranger's account, not for this one.
        let email = "ada.lovelace@example.com";
        assert!(Password::parse(email).is_ok());
        assert!(Password::parse_for(email, &[email, "Ada Lovelace"]).is_err());
        assert!(Password::parse("correct horse battery staple").is_ok());
    }

    #[test]
    fn passwords_are_never_printed() {
        let p = Password::parse("correct horse").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
