//! The orders service's domain values, parsed once at the edge of the service.
//!
//! After parsing, an order has 1 to [`MAX_ITEMS`] items, every SKU is bounded and
//! printable, every quantity is at least 1, every price non-negative, and the total is
//! known not to overflow.

use chrono::{DateTime, Utc};
pub use platform_api::{FieldViolation, Id};
use sha2::{Digest, Sha256};

/// Most items one order may hold.
pub const MAX_ITEMS: usize = 100;
/// Longest SKU, in characters.
pub const MAX_SKU_CHARS: usize = 64;
/// Largest quantity of one item.
pub const MAX_QUANTITY: i32 = 1_000_000;
/// Longest idempotency key, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// An order id (UUIDv7: sorts by creation time).
pub type OrderId = Id<Order>;

/// The account an order belongs to: the `sub` of a verified token.
pub type UserId = Id<Account>;

/// An account of the users service, known here only by its id.
#[derive(Debug)]
pub enum Account {}

/// A stock-keeping unit: 1 to 64 printable characters without white space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Parses `value` for the field at `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldViolation> {
        if value.is_empty() {
            return Err(FieldViolation::new(field, "must not be empty"));
        }
        if value.chars().count() > MAX_SKU_CHARS {
            return Err(FieldViolation::new(field, "must be at most 64 characters"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(FieldViolation::new(
                field,
                "must not contain white space or control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderItem {
    /// What.
    pub sku: Sku,
    /// How many: 1 to [`MAX_QUANTITY`].
    pub quantity: i32,
    /// Price of one, in cents: zero or more.
    pub unit_price_cents: i64,
}

/// The items of a new order with their total, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    items: Vec<OrderItem>,
    total_cents: i64,
}

/// An item as it arrives, before validation.
#[derive(Debug, Clone, Copy)]
pub struct RawItem<'a> {
    /// The SKU as sent.
    pub sku: &'a str,
    /// The quantity as sent.
    pub quantity: i32,
    /// The unit price as sent.
    pub unit_price_cents: i64,
}

impl Items {
    /// Validates every item and computes the total with overflow checks; reports every
    /// violation, each with the index of its item.
    pub fn parse(raw: &[RawItem<'_>]) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if raw.is_empty() {
            violations.push(FieldViolation::new("items", "must hold at least one item"));
        }
        if raw.len() > MAX_ITEMS {
            violations.push(FieldViolation::new("items", "must hold at most 100 items"));
            return Err(violations);
        }
        let mut items = Vec::with_capacity(raw.len());
        for (i, item) in raw.iter().enumerate() {
            let sku = Sku::parse(&format!("items[{i}].sku"), item.sku);
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                violations.push(FieldViolation::new(
                    format!("items[{i}].quantity"),
                    "must be between 1 and 1000000",
                ));
            }
            if item.unit_price_cents < 0 {
                violations.push(FieldViolation::new(
                    format!("items[{i}].unit_price_cents"),
                    "must not be negative",
                ));
            }
            match sku {
                Ok(sku) => items.push(OrderItem {
                    sku,
                    quantity: item.quantity,
                    unit_price_cents: item.unit_price_cents,
                }),
                Err(v) => violations.push(v),
            }
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        let total = items.iter().try_fold(0_i64, |sum, item| {
            item.unit_price_cents
                .checked_mul(i64::from(item.quantity))
                .and_then(|line| sum.checked_add(line))
        });
        match total {
            Some(total_cents) => Ok(Self { items, total_cents }),
            None => Err(vec![FieldViolation::new(
                "items",
                "the order total exceeds the largest amount that can be represented",
            )]),
        }
    }

    /// The items.
    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }

    /// Sum of quantity × unit price.
    pub fn total_cents(&self) -> i64 {
        self.total_cents
    }

    /// A digest of the items, equal for equal orders: tells a retry from a different
    /// order that reuses an idempotency key.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for item in &self.items {
            hash.update(item.sku.as_str().as_bytes());
            hash.update([0]);
            hash.update(item.quantity.to_be_bytes());
            hash.update(item.unit_price_cents.to_be_bytes());
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A client's idempotency key: 1 to 128 printable characters; empty means none.
pub fn request_id(value: &str) -> Result<Option<String>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_REQUEST_ID_CHARS {
        return Err(FieldViolation::new(
            "request_id",
            "must be at most 128 characters",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            "request_id",
            "must not contain control characters",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed and not yet cancelled.
    Pending,
    /// Cancelled.
    Cancelled,
}

impl OrderStatus {
    /// The database spelling.
    pub fn as_db(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Cancelled => "cancelled",
        }
    }

    /// Reads the database spelling.
    pub fn from_db(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// Its owner.
    pub user_id: UserId,
    /// What was ordered, in the order given.
    pub items: Vec<OrderItem>,
    /// Sum of quantity × unit price.
    pub total_cents: i64,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// When it was placed.
    pub create_time: DateTime<Utc>,
    /// When it last changed.
    pub update_time: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: i32, price: i64) -> RawItem<'_> {
        RawItem {
            sku,
            quantity,
            unit_price_cents: price,
        }
    }

    #[test]
    fn totals_are_computed() {
        let items = Items::parse(&[item("A-1", 2, 150), item("B-2", 1, 0)]).unwrap();
        assert_eq!(items.total_cents(), 300);
    }

    #[test]
    fn every_violation_names_its_item() {
        let err = Items::parse(&[item("", 0, -1), item("ok", 1, 1), item("has space", 1, 1)])
            .unwrap_err();
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].quantity",
                "items[0].unit_price_cents",
                "items[0].sku",
                "items[2].sku"
            ]
        );
    }

    #[test]
    fn empty_and_oversized_orders_are_refused() {
        assert_eq!(Items::parse(&[]).unwrap_err()[0].field, "items");
        let many = vec![item("x", 1, 1); MAX_ITEMS + 1];
        assert_eq!(Items::parse(&many).unwrap_err()[0].field, "items");
        assert!(Items::parse(&vec![item("x", 1, 1); MAX_ITEMS]).is_ok());
    }

    #[test]
    fn overflowing_totals_are_refused_not_wrapped() {
        let err = Items::parse(&[item("x", 2, i64::MAX / 2 + 1)]).unwrap_err();
        assert_eq!(err[0].field, "items");
        let err = Items::parse(&[item("x", 1, i64::MAX), item("y", 1, 1)]).unwrap_err();
        assert!(err[0].description.contains("exceeds"));
    }

    #[test]
    fn fingerprints_tell_orders_apart() {
        let a = Items::parse(&[item("A", 1, 100)]).unwrap();
        let b = Items::parse(&[item("A", 2, 100)]).unwrap();
        assert_eq!(
            a.fingerprint(),
            Items::parse(&[item("A", 1, 100)]).unwrap().fingerprint()
        );
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn request_ids_are_bounded() {
        assert_eq!(request_id("").unwrap(), None);
        assert_eq!(request_id("k-1").unwrap().as_deref(), Some("k-1"));
        assert!(request_id(&"k".repeat(129)).is_err());
    }
}
