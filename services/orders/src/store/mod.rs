//! Where orders live: one trait, implemented once in SQL for PostgreSQL and SQLite
//! (on the pool of either, see `sql.rs`); [`open`] picks the backend from the database URL's scheme.
//!
//! The two guarantees that matter most are enforced by the database, not by the
//! service, so that they hold across replicas: `(user_id, request_id)` is unique
//! (idempotent creation, even when retries race), and a cancel is a conditional update
//! (`… WHERE status = 'pending'`), so two cancels cannot both win.
//!
//! Every change writes its event (`OrderCreated`, `OrderCancelled`) to the outbox in
//! the same transaction, and applying an account deletion records the event id in
//! that transaction too, so a redelivered event changes nothing.

mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use platform_db::StoreError;
use platform_db::{Database, Migrations};
use uuid::Uuid;

use crate::domain::{Items, Order, OrderId, OrderItem, OrderStatus, Sku, UserId};

/// The orders service's migrations for each backend.
pub const MIGRATIONS: Migrations = platform_db::migrations!();

/// A new order, ready to store.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Its id.
    pub id: OrderId,
    /// Its owner: the caller.
    pub user_id: UserId,
    /// Its validated items and total.
    pub items: Items,
    /// The client's idempotency key, if any.
    pub request_id: Option<String>,
}

/// What creating an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new order was stored.
    New(Order),
    /// An order with the same caller and key exists and has the same items: a retry.
    Retry(Order),
    /// An order with the same caller and key exists with different items.
    KeyReused(Order),
}

/// What cancelling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The order was pending and is now cancelled.
    Done(Order),
    /// The order exists but was not pending (already cancelled, by this call's twin
    /// perhaps).
    NotPending(Order),
    /// No such order.
    NotFound,
}

/// What applying an account deletion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event was applied now: these orders were pending and are cancelled.
    Now(Vec<Order>),
    /// The event was applied before (a redelivery): nothing changed.
    Before,
}

/// An event a consumer gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    /// The consumer's durable name.
    pub consumer: String,
    /// Where the message is in its stream.
    pub stream_sequence: u64,
    /// Its subject.
    pub subject: String,
    /// Its `Nats-Msg-Id`, if any.
    pub event_id: Option<String>,
    /// The message as received.
    pub payload: Vec<u8>,
    /// Why it was not applied.
    pub reason: String,
    /// How many deliveries were tried.
    pub attempts: u32,
}

/// Which orders a listing returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only this owner's.
    pub user_id: Option<UserId>,
    /// Only with this status.
    pub status: Option<OrderStatus>,
}

/// Which page of a listing (newest first): up to `limit` orders, older than `after`.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// At most this many.
    pub limit: u32,
    /// The last order of the previous page, if this is not the first.
    pub after: Option<OrderId>,
}

/// Order storage.
#[async_trait]
pub trait OrderStore: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `order` and its items in one transaction, unless the caller already has
    /// an order under the same idempotency key.
    async fn create(&self, order: &NewOrder) -> Result<Created, StoreError>;
    /// The order with `id`.
    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// One page of the orders matching `filter`, newest first.
    async fn list(&self, filter: Filter, page: Page) -> Result<Vec<Order>, StoreError>;
    /// Cancels the order if it is pending, with its `OrderCancelled` event (for
    /// `reason`) in the same transaction.
    async fn cancel(&self, id: OrderId, reason: &str) -> Result<Cancelled, StoreError>;
    /// Applies the deletion of account `user_id` (event `event_id`, read by
    /// `consumer`): cancels its pending orders, each with its `OrderCancelled` event,
    /// and records the event id, all in one transaction; an event id recorded before
    /// changes nothing.
    async fn cancel_for_deleted_account(
        &self,
        consumer: &str,
        event_id: uuid::Uuid,
        user_id: UserId,
    ) -> Result<Applied, StoreError>;
    /// Keeps an event a consumer gave up on (once per stream sequence).
    async fn park(&self, event: &ParkedEvent) -> Result<(), StoreError>;
    /// The events parked by `consumer`, oldest first.
    async fn parked(&self, consumer: &str) -> Result<Vec<ParkedEvent>, StoreError>;
}

/// The store for `database`'s backend.
pub fn open(database: &Database) -> Arc<dyn OrderStore> {
    platform_db::open(database, |postgres| postgres, |sqlite| sqlite)
}

/// An order row without its items, as both backends read it.
pub(crate) struct OrderRow {
    pub(crate) id: OrderId,
    pub(crate) user_id: UserId,
    pub(crate) total_cents: i64,
    pub(crate) status: String,
    pub(crate) fingerprint: String,
    pub(crate) create_time: DateTime<Utc>,
    pub(crate) update_time: DateTime<Utc>,
}

/// An item row.
pub(crate) struct ItemRow {
    pub(crate) order_id: OrderId,
    pub(crate) sku: String,
    pub(crate) quantity: i32,
    pub(crate) unit_price_cents: i64,
}

/// Joins order rows with their item rows (items ordered by position).
pub(crate) fn assemble(rows: Vec<OrderRow>, items: Vec<ItemRow>) -> Result<Vec<Order>, StoreError> {
    let mut by_order: std::collections::HashMap<OrderId, Vec<OrderItem>> =
        std::collections::HashMap::new();
    for item in items {
        let sku = Sku::parse("sku", &item.sku)
            .map_err(|_| StoreError::Corrupt(format!("order {}: invalid sku", item.order_id)))?;
        by_order.entry(item.order_id).or_default().push(OrderItem {
            sku,
            quantity: item.quantity,
            unit_price_cents: item.unit_price_cents,
        });
    }
    rows.into_iter()
        .map(|row| {
            let status = OrderStatus::from_db(&row.status)
                .ok_or_else(|| StoreError::Corrupt(format!("order {}: unknown status", row.id)))?;
            Ok(Order {
                id: row.id,
                user_id: row.user_id,
                items: by_order.remove(&row.id).unwrap_or_default(),
                total_cents: row.total_cents,
                status,
                create_time: row.create_time,
                update_time: row.update_time,
            })
        })
        .collect()
}

/// Sorts the outcome of an insert that found the key taken.
pub(crate) fn existing(order: Order, stored_fingerprint: &str, new: &NewOrder) -> Created {
    if stored_fingerprint == new.items.fingerprint() {
        Created::Retry(order)
    } else {
        Created::KeyReused(order)
    }
}

/// `store`, calling `committed` after each of its transactions that wrote events (an
/// order placed or cancelled), so that what publishes and follows them need not wait
/// for its next poll.
pub fn notifying(
    store: Arc<dyn OrderStore>,
    committed: impl Fn() + Send + Sync + 'static,
) -> Arc<dyn OrderStore> {
    Arc::new(Notifying {
        inner: store,
        committed: Box::new(committed),
    })
}

struct Notifying {
    inner: Arc<dyn OrderStore>,
    committed: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Notifying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifying")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl OrderStore for Notifying {
    async fn create(&self, order: &NewOrder) -> Result<Created, StoreError> {
        let created = self.inner.create(order).await?;
        if matches!(created, Created::New(_)) {
            (self.committed)();
        }
        Ok(created)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.get(id).await
    }

    async fn list(&self, filter: Filter, page: Page) -> Result<Vec<Order>, StoreError> {
        self.inner.list(filter, page).await
    }

    async fn cancel(&self, id: OrderId, reason: &str) -> Result<Cancelled, StoreError> {
        let cancelled = self.inner.cancel(id, reason).await?;
        if matches!(cancelled, Cancelled::Done(_)) {
            (self.committed)();
        }
        Ok(cancelled)
    }

    async fn cancel_for_deleted_account(
        &self,
        consumer: &str,
        event_id: Uuid,
        user_id: UserId,
    ) -> Result<Applied, StoreError> {
        let applied = self
            .inner
            .cancel_for_deleted_account(consumer, event_id, user_id)
            .await?;
        if matches!(&applied, Applied::Now(orders) if !orders.is_empty()) {
            (self.committed)();
        }
        Ok(applied)
    }

    async fn park(&self, event: &ParkedEvent) -> Result<(), StoreError> {
        self.inner.park(event).await
    }

    async fn parked(&self, consumer: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        self.inner.parked(consumer).await
    }
}
