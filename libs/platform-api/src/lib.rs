//! The API conventions every service of the platform follows, in one place so that
//! every API answers the same way.
//!
//! - Validation: the rules declared in the protos (`buf.validate`) are checked first,
//!   by one [`rules::Validator`] shared by the services and the gateway; then requests
//!   are parsed field by field into domain values, for what no rule can say. Every
//!   problem is a [`FieldViolation`], collected by [`Violations`] so a client learns
//!   all of them at once, and returned as INVALID_ARGUMENT with a
//!   `google.rpc.BadRequest` ([`InvalidRequest`]).
//! - Ids: every resource id is an [`Id`] (a UUID with a marker of its kind), parsed
//!   from requests and printed the same way everywhere.
//! - Faults: a database that is down is UNAVAILABLE, anything else the server did wrong
//!   is an opaque INTERNAL, both logged where the call's span is
//!   ([`database_unavailable`], [`internal`]).
//! - Paging: `page_size` 0 means 50 and is capped at 1000 ([`page_size`]); page tokens
//!   are opaque encodings of the last id of the previous page ([`encode_page_token`]),
//!   so listings page by keyset.
//! - Time: `google.protobuf.Timestamp` from UTC times ([`timestamp`]).

pub mod id;
pub mod rules;
pub mod status;

pub use id::{Id, InvalidId};
pub use status::{InvalidRequest, database_unavailable, internal, invalid_argument};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// One problem with one request field, reported as a `google.rpc.BadRequest` field
/// violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's proto name or path, for example `email` or `items[2].sku`.
    pub field: String,
    /// What is wrong, in words a client developer can act on.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Collects every violation of a request before failing.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the value, or records why it is invalid.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    /// Keeps the value, or records every reason it is invalid.
    pub fn check_all<T>(&mut self, result: Result<T, Vec<FieldViolation>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violations) => {
                self.0.extend(violations);
                None
            }
        }
    }

    /// Records a violation.
    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// The page `page_size` and `page_token` ask for, recording what is wrong with
    /// them; the first page of the default size when something is (and [`finish`]
    /// then fails).
    ///
    /// [`finish`]: Violations::finish
    pub fn page(&mut self, page_size: i32, page_token: &str) -> Page {
        Page {
            limit: self
                .check(self::page_size(page_size))
                .unwrap_or(DEFAULT_PAGE_SIZE),
            after: self.check(decode_page_token(page_token)).flatten(),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everything recorded, or `Ok` when nothing was.
    pub fn finish(self) -> Result<(), InvalidRequest> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.into())
        }
    }
}

/// `field: description; field: description`.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Default page size of every listing.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page size of every listing; larger requests are capped, not refused.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page of a listing a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Rows on the page, at most.
    pub limit: u32,
    /// The last id of the previous page; `None` for the first page.
    pub after: Option<Uuid>,
}

/// A requested page size: 0 means the default, anything above the cap is capped.
pub fn page_size(requested: i32) -> Result<u32, FieldViolation> {
    match requested {
        n if n < 0 => Err(FieldViolation::new("page_size", "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok(u32::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE)),
    }
}

/// The opaque continuation of a listing ordered by id: the last id of the page.
pub fn encode_page_token(last: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last.as_bytes())
}

/// Decodes a token made by [`encode_page_token`]; empty means the first page.
pub fn decode_page_token(token: &str) -> Result<Option<Uuid>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || FieldViolation::new("page_token", "is not a token returned by this service");
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    Uuid::from_slice(&bytes).map(Some).map_err(|_| bad())
}

/// Splits one extra row off a listing fetched with `limit + 1` rows: the page, and the
/// token of the next page when there is one.
pub fn paginate<T>(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> Uuid) -> (Vec<T>, String) {
    let limit = limit as usize;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match (more, rows.last()) {
        (true, Some(last)) => encode_page_token(id(last)),
        _ => String::new(),
    };
    (rows, next)
}

/// A protobuf timestamp of `at`.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(5000).unwrap(), 1000);
        assert_eq!(page_size(7).unwrap(), 7);
        assert!(page_size(-1).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        assert_eq!(decode_page_token(&encode_page_token(id)).unwrap(), Some(id));
        assert_eq!(decode_page_token("").unwrap(), None);
        assert!(decode_page_token("!!!").is_err());
        assert!(decode_page_token("AAAA").is_err());
    }

    #[test]
    fn paginate_reports_a_next_page_only_when_there_is_one() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let (page, next) = paginate(ids.clone(), 3, |id| *id);
        assert_eq!(page, ids[..3]);
        assert_eq!(decode_page_token(&next).unwrap(), Some(ids[2]));
        let (page, next) = paginate(ids[..3].to_vec(), 3, |id| *id);
        assert_eq!(page.len(), 3);
        assert!(next.is_empty());
    }
}
