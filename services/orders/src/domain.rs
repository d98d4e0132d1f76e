//! The orders service's domain values, parsed once at the edge of the service.
//!
//! A request is first checked against the rules its proto declares (`buf.validate`):
//! 1 to [`MAX_ITEMS`] items, SKUs of 1 to [`MAX_SKU_CHARS`] printable characters
//! without spaces, quantities of 1 to [`MAX_QUANTITY`], prices of 0 to
//! [`MAX_UNIT_PRICE_CENTS`], an idempotency key of at most [`MAX_REQUEST_ID_CHARS`]
//! characters. What remains here is what no declared rule can say (the total must
//! fit in 64 bits), and the SKU's own check, which also guards what is read back
//! from the database.

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
/// Highest price of one item, in cents: with at most [`MAX_ITEMS`] items of at most
/// [`MAX_QUANTITY`] each, no total can overflow an `i64` (the rules say so; the total
/// is still computed with checks).
pub const MAX_UNIT_PRICE_CENTS: i64 = 10_000_000_000;

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
    /// Takes items that passed the request rules, and computes the total with
    /// overflow checks; reports every violation, each with the index of its item.
    pub fn parse(raw: &[RawItem<'_>]) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let mut items = Vec::with_capacity(raw.len());
        for (i, item) in raw.iter().enumerate() {
            let sku = Sku::parse(&format!("items[{i}].sku"), item.sku);
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

/// A client's idempotency key (its length and characters are request rules); empty
/// means none.
pub fn request_id(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
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
        let err =
            Items::parse(&[item("", 1, 1), item("ok", 1, 1), item("has space", 1, 1)]).unwrap_err();
        let fields: Vec<_> = err.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["items[0].sku", "items[2].sku"]);
    }

    #[test]
    fn the_largest_order_the_rules_allow_has_a_total() {
        let most = vec![item("x", MAX_QUANTITY, MAX_UNIT_PRICE_CENTS); MAX_ITEMS];
        assert_eq!(
            Items::parse(&most).unwrap().total_cents(),
            1_000_000_000_000_000_000
        );
    }

    /// The limits named here are the proto's rules: at each one a request passes,
    /// one past it is refused, so the two cannot drift apart unnoticed.
    #[test]
    fn the_limits_are_the_rules_of_the_proto() {
        use platform_proto::orders::v1 as pb;

        let rules = platform_api::rules::Validator::new(platform_proto::descriptor_pool().clone());
        let item = |sku: String, quantity: i32, unit_price_cents: i64| pb::OrderItem {
            sku,
            quantity,
            unit_price_cents,
        };
        let order = |items: Vec<pb::OrderItem>, request_id: String| pb::CreateOrderRequest {
            items,
            request_id,
        };
        let longest = || "S".repeat(MAX_SKU_CHARS);
        let at_limits = order(
            vec![item(longest(), MAX_QUANTITY, MAX_UNIT_PRICE_CENTS); MAX_ITEMS],
            "k".repeat(MAX_REQUEST_ID_CHARS),
        );
        assert!(rules.check(&at_limits).is_ok());
        for past in [
            order(vec![item(longest(), 1, 0); MAX_ITEMS + 1], String::new()),
            order(vec![item(format!("{}S", longest()), 1, 0)], String::new()),
            order(vec![item("S".into(), MAX_QUANTITY + 1, 0)], String::new()),
            order(
                vec![item("S".into(), 1, MAX_UNIT_PRICE_CENTS + 1)],
                String::new(),
            ),
            order(
                vec![item("S".into(), 1, 0)],
                "k".repeat(MAX_REQUEST_ID_CHARS + 1),
            ),
        ] {
            assert!(rules.check(&past).is_err(), "{past:?}");
        }
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
    fn an_empty_request_id_is_none() {
        assert_eq!(request_id(""), None);
        assert_eq!(request_id("k-1").as_deref(), Some("k-1"));
    }
}
