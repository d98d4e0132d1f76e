//! Typed resource ids: one UUID type for every kind of resource, told apart by a marker.
//!
//! `Id<User>` and `Id<Order>` are both a UUID underneath, but the compiler refuses one
//! where the other is wanted, and every id parses from a request and prints back the
//! same way in every service.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use uuid::Uuid;

use crate::FieldViolation;

/// The id of a `T`: a UUID, v7 when made here, so ids sort by creation time and
/// listings page by keyset on them.
///
/// `T` is only a marker; it is never stored, so any type names a kind of id.
pub struct Id<T> {
    uuid: Uuid,
    // `fn() -> T` keeps `Id<T>` `Send`, `Sync` and `Copy` whatever `T` is.
    kind: PhantomData<fn() -> T>,
}

/// A request string that is not a UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a UUID")]
pub struct InvalidId;

impl InvalidId {
    /// The violation of request field `field`, as the client sees it.
    pub fn at(self, field: impl Into<String>) -> FieldViolation {
        FieldViolation::new(field, self.to_string())
    }
}

impl<T> Id<T> {
    /// A fresh id.
    pub fn generate() -> Self {
        Self::from(Uuid::now_v7())
    }

    /// Parses the id sent in request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        value
            .parse()
            .map_err(|invalid: InvalidId| invalid.at(field))
    }

    /// The UUID.
    pub fn as_uuid(self) -> Uuid {
        self.uuid
    }
}

impl<T> FromStr for Id<T> {
    type Err = InvalidId;

    fn from_str(value: &str) -> Result<Self, InvalidId> {
        Uuid::parse_str(value)
            .map(Self::from)
            .map_err(|_| InvalidId)
    }
}

impl<T> From<Uuid> for Id<T> {
    fn from(uuid: Uuid) -> Self {
        Self {
            uuid,
            kind: PhantomData,
        }
    }
}

impl<T> From<Id<T>> for Uuid {
    fn from(id: Id<T>) -> Self {
        id.uuid
    }
}

/// Lower-case and hyphenated, as ids travel in requests, tokens and logs.
impl<T> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uuid.hyphenated().fmt(f)
    }
}

// The traits below are written by hand because deriving them would demand the same of
// the marker `T`, which is never stored.

impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Id").field(&self.uuid).finish()
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Id<T> {}

impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl<T> Eq for Id<T> {}

impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl<T> Hash for Id<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Thing {}

    #[test]
    fn ids_round_trip_through_their_text() {
        let id = Id::<Thing>::generate();
        assert_eq!(id.to_string().parse::<Id<Thing>>().unwrap(), id);
        assert_eq!(Id::<Thing>::from(id.as_uuid()), id);
    }

    #[test]
    fn a_bad_id_is_a_violation_of_its_field() {
        let violation = Id::<Thing>::parse("order_id", "not-a-uuid").unwrap_err();
        assert_eq!(violation, FieldViolation::new("order_id", "must be a UUID"));
    }

    #[test]
    fn generated_ids_sort_by_creation() {
        let first = Id::<Thing>::generate();
        let second = Id::<Thing>::generate();
        assert!(first < second);
    }
}
