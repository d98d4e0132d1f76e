//! [`OrderStore`] in SQL, written once for PostgreSQL and SQLite.
//!
//! The statements are in PostgreSQL's spelling; [`Backend`] adapts what differs: the
//! parameters SQLite numbers `?1`, ids it keeps as text, and how a set of ids is
//! matched (one array on PostgreSQL, a list on SQLite).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::{Backend, Column, NotAUuid, TraceQuery, fetch_page, now, query_span};
use sqlx::{AssertSqlSafe, ColumnIndex, Executor, Pool, QueryBuilder};
use uuid::Uuid;

use super::{
    Applied, Cancelled, Created, Filter, ItemRow, NewOrder, OrderRow, OrderStore, Page,
    ParkedEvent, StoreError, assemble, existing,
};
use crate::domain::{Order, OrderId, OrderStatus, UserId};
use crate::events::{self, reason};

type Row<K> = (K, K, i64, String, String, DateTime<Utc>, DateTime<Utc>);

/// [`Row`] joined with one of its items (none when the order has no items).
type JoinedRow<K> = (
    K,
    K,
    i64,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    Option<i32>,
    Option<i64>,
);

const COLUMNS: &str =
    "id, user_id, total_cents, status, request_fingerprint, create_time, update_time";

/// [`COLUMNS`] of `orders o` in a join.
const JOINED_COLUMNS: &str =
    "o.id, o.user_id, o.total_cents, o.status, o.request_fingerprint, o.create_time, o.update_time";

fn uuid<D: Backend>(stored: D::Uuid) -> Result<Uuid, StoreError> {
    D::uuid_from_db(stored)
        .map_err(|NotAUuid(text)| StoreError::Corrupt(format!("{text:?} is not a UUID")))
}

fn key<D: Backend>(id: impl Into<Uuid>) -> D::Uuid {
    D::uuid_to_db(id.into())
}

fn order_row<D: Backend>(
    (id, user_id, total_cents, status, fingerprint, create_time, update_time): Row<D::Uuid>,
) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        id: uuid::<D>(id)?.into(),
        user_id: uuid::<D>(user_id)?.into(),
        total_cents,
        status,
        fingerprint,
        create_time,
        update_time,
    })
}

/// Orders in the database of backend `D`: the pool is the store.
#[async_trait]
impl<D: Backend> OrderStore for Pool<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    String: Column<D>,
    Option<String>: Column<D>,
    Option<i32>: Column<D>,
    Option<i64>: Column<D>,
    i32: Column<D>,
    i64: Column<D>,
    Vec<u8>: Column<D>,
    DateTime<Utc>: Column<D>,
{
    async fn create(&self, order: &NewOrder) -> Result<Created, StoreError> {
        // On SQLite the INSERT is the transaction's first statement, so it takes the
        // write lock at once and racing writers queue on the busy timeout; on
        // PostgreSQL a racing insert with the same key waits for the first to commit,
        // then inserts nothing.
        let mut tx = platform_db::begin(self).await?;
        let sql = D::sql(&format!(
            "INSERT INTO orders (id, user_id, request_id, request_fingerprint, total_cents, status, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
             ON CONFLICT (user_id, request_id) DO NOTHING \
             RETURNING {COLUMNS}"
        ));
        let inserted: Option<Row<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(order.id))
            .bind(key::<D>(order.user_id))
            .bind(order.request_id.clone())
            .bind(order.items.fingerprint())
            .bind(order.items.total_cents())
            .bind(now())
            .fetch_optional(&mut *tx)
            .traced(query_span(D::SYSTEM, "INSERT", "orders", &sql))
            .await?;

        let Some(row) = inserted else {
            platform_db::rollback(tx).await?;
            let sql = D::sql(&format!(
                "SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND request_id = $2"
            ));
            let row: Option<Row<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(key::<D>(order.user_id))
                .bind(order.request_id.clone())
                .fetch_optional(self)
                .traced(query_span(D::SYSTEM, "SELECT", "orders", &sql))
                .await?;
            let (stored, fingerprint) = with_items(self, row).await?.pop().ok_or_else(|| {
                StoreError::Corrupt("idempotency conflict without a stored order".to_owned())
            })?;
            return Ok(existing(stored, &fingerprint, order));
        };

        let mut insert = QueryBuilder::<D>::new(
            "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_cents) ",
        );
        insert.push_values(
            order.items.items().iter().enumerate(),
            |mut b, (position, item)| {
                b.push_bind(key::<D>(order.id))
                    .push_bind(i32::try_from(position).unwrap_or(i32::MAX))
                    .push_bind(item.sku.as_str().to_owned())
                    .push_bind(item.quantity)
                    .push_bind(item.unit_price_cents);
            },
        );
        // The text has one placeholder group per item, never the items themselves.
        let items_sql = insert.sql();
        insert
            .build()
            .execute(&mut *tx)
            .traced(query_span(
                D::SYSTEM,
                "INSERT",
                "order_items",
                items_sql.as_str(),
            ))
            .await?;
        let row = order_row::<D>(row)?;
        let created = Order {
            id: row.id,
            user_id: row.user_id,
            items: order.items.items().to_vec(),
            total_cents: row.total_cents,
            status: OrderStatus::Pending,
            create_time: row.create_time,
            update_time: row.update_time,
        };
        platform_events::enqueue::<D>(&mut tx, &events::order_created(&created)).await?;
        platform_db::commit(tx).await?;
        Ok(Created::New(created))
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        // One round trip, the hottest read of the service: the order joined with its
        // items, a row per item (the order's columns repeated), not a second query.
        let sql = D::sql(&format!(
            "SELECT {JOINED_COLUMNS}, i.sku, i.quantity, i.unit_price_cents FROM orders o \
             LEFT JOIN order_items i ON i.order_id = o.id WHERE o.id = $1 ORDER BY i.position"
        ));
        let rows: Vec<JoinedRow<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(id))
            .fetch_all(self)
            .traced(query_span(D::SYSTEM, "SELECT", "orders", &sql))
            .await?;
        let mut order = None;
        let mut items = Vec::with_capacity(rows.len());
        for (id, user_id, total, status, fingerprint, created, updated, sku, quantity, price) in
            rows
        {
            let order_id = match &order {
                Some(OrderRow { id, .. }) => *id,
                None => {
                    let row = order_row::<D>((
                        id,
                        user_id,
                        total,
                        status,
                        fingerprint,
                        created,
                        updated,
                    ))?;
                    let id = row.id;
                    order = Some(row);
                    id
                }
            };
            if let (Some(sku), Some(quantity), Some(unit_price_cents)) = (sku, quantity, price) {
                items.push(ItemRow {
                    order_id,
                    sku,
                    quantity,
                    unit_price_cents,
                });
            }
        }
        let Some(order) = order else {
            return Ok(None);
        };
        Ok(assemble(vec![order], items)?.pop())
    }

    async fn list(&self, filter: Filter, page: Page) -> Result<Vec<Order>, StoreError> {
        // Only the filters asked for are in the statement, so the planner sees plain
        // comparisons and can page on the (user_id, id) index.
        let mut query = QueryBuilder::<D>::new(format!("SELECT {COLUMNS} FROM orders WHERE TRUE"));
        if let Some(user_id) = filter.user_id {
            query.push(" AND user_id = ").push_bind(key::<D>(user_id));
        }
        if let Some(status) = filter.status {
            query
                .push(" AND status = ")
                .push_bind(status.as_db().to_owned());
        }
        let after = page.after.map(OrderId::as_uuid);
        let rows: Vec<Row<D::Uuid>> = fetch_page(self, query, "orders", after, page.limit).await?;
        Ok(with_items(self, rows)
            .await?
            .into_iter()
            .map(|(order, _)| order)
            .collect())
    }

    async fn cancel(&self, id: OrderId, reason: &str) -> Result<Cancelled, StoreError> {
        // Conditional update: of two concurrent cancels, the second finds the order no
        // longer pending (PostgreSQL re-checks the condition after waiting for the
        // first's row lock; SQLite serialises the writes).
        let mut tx = platform_db::begin(self).await?;
        let rows = cancel_pending(&mut *tx, "id", key::<D>(id)).await?;
        if let Some((order, _)) = with_items(&mut *tx, rows).await?.pop() {
            platform_events::enqueue::<D>(&mut tx, &events::order_cancelled(&order, reason))
                .await?;
            platform_db::commit(tx).await?;
            return Ok(Cancelled::Done(order));
        }
        platform_db::rollback(tx).await?;
        Ok(match self.get(id).await? {
            Some(order) => Cancelled::NotPending(order),
            None => Cancelled::NotFound,
        })
    }

    async fn cancel_for_deleted_account(
        &self,
        consumer: &str,
        event_id: Uuid,
        user_id: UserId,
    ) -> Result<Applied, StoreError> {
        // The event id is recorded first: on SQLite that takes the write lock at once,
        // on PostgreSQL a concurrent delivery of the same event waits on the key, then
        // finds it taken.
        let mut tx = platform_db::begin(self).await?;
        let sql = D::sql(
            "INSERT INTO processed_events (consumer, event_id, processed_time) VALUES ($1, $2, $3) \
             ON CONFLICT (consumer, event_id) DO NOTHING RETURNING consumer",
        );
        let recorded: Option<(String,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(consumer.to_owned())
            .bind(D::uuid_to_db(event_id))
            .bind(now())
            .fetch_optional(&mut *tx)
            .traced(query_span(D::SYSTEM, "INSERT", "processed_events", &sql))
            .await?;
        if recorded.is_none() {
            platform_db::rollback(tx).await?;
            return Ok(Applied::Before);
        }
        let rows = cancel_pending(&mut *tx, "user_id", key::<D>(user_id)).await?;
        let mut cancelled: Vec<Order> = with_items(&mut *tx, rows)
            .await?
            .into_iter()
            .map(|(order, _)| order)
            .collect();
        // Events in id order, which is the order the orders were placed in.
        cancelled.sort_by_key(|order| order.id.as_uuid());
        for order in &cancelled {
            let event = events::order_cancelled(order, reason::ACCOUNT_DELETED);
            platform_events::enqueue::<D>(&mut tx, &event).await?;
        }
        platform_db::commit(tx).await?;
        Ok(Applied::Now(cancelled))
    }

    async fn park(&self, event: &ParkedEvent) -> Result<(), StoreError> {
        let sql = D::sql(
            "INSERT INTO parked_events (consumer, stream_sequence, subject, event_id, payload, reason, attempts, parked_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (consumer, stream_sequence) DO NOTHING",
        );
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(event.consumer.clone())
            .bind(i64::try_from(event.stream_sequence).unwrap_or(i64::MAX))
            .bind(event.subject.clone())
            .bind(event.event_id.clone())
            .bind(event.payload.clone())
            .bind(event.reason.clone())
            .bind(i32::try_from(event.attempts).unwrap_or(i32::MAX))
            .bind(now())
            .execute(self)
            .traced(query_span(D::SYSTEM, "INSERT", "parked_events", &sql))
            .await?;
        Ok(())
    }

    async fn parked(&self, consumer: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let sql = D::sql(
            "SELECT consumer, stream_sequence, subject, event_id, payload, reason, attempts \
             FROM parked_events WHERE consumer = $1 ORDER BY stream_sequence",
        );
        type Parked = (String, i64, String, Option<String>, Vec<u8>, String, i32);
        let rows: Vec<Parked> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(consumer.to_owned())
            .fetch_all(self)
            .traced(query_span(D::SYSTEM, "SELECT", "parked_events", &sql))
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(consumer, sequence, subject, event_id, payload, reason, attempts)| ParkedEvent {
                    consumer,
                    stream_sequence: u64::try_from(sequence).unwrap_or_default(),
                    subject,
                    event_id,
                    payload,
                    reason,
                    attempts: u32::try_from(attempts).unwrap_or_default(),
                },
            )
            .collect())
    }
}

/// Cancels the pending orders whose `column` (`id` or `user_id`) holds `key`: their
/// rows as they are now.
async fn cancel_pending<'e, D, E>(
    executor: E,
    column: &'static str,
    key: D::Uuid,
) -> Result<Vec<Row<D::Uuid>>, StoreError>
where
    D: Backend,
    E: Executor<'e, Database = D>,
    Row<D::Uuid>: for<'r> sqlx::FromRow<'r, D::Row>,
    DateTime<Utc>: Column<D>,
{
    let sql = D::sql(&format!(
        "UPDATE orders SET status = 'cancelled', update_time = $2 \
         WHERE {column} = $1 AND status = 'pending' RETURNING {COLUMNS}"
    ));
    let rows = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(key)
        .bind(now())
        .fetch_all(executor)
        .traced(query_span(D::SYSTEM, "UPDATE", "orders", &sql))
        .await?;
    Ok(rows)
}

/// Orders of `rows` with their items, and each order's stored fingerprint.
async fn with_items<'e, D, E>(
    executor: E,
    rows: impl IntoIterator<Item = Row<D::Uuid>>,
) -> Result<Vec<(Order, String)>, StoreError>
where
    D: Backend,
    E: Executor<'e, Database = D>,
    (D::Uuid, String, i32, i64): for<'r> sqlx::FromRow<'r, D::Row>,
{
    let rows = rows
        .into_iter()
        .map(order_row::<D>)
        .collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
    let fingerprints: Vec<String> = rows.iter().map(|r| r.fingerprint.clone()).collect();
    let mut query = QueryBuilder::<D>::new(
        "SELECT order_id, sku, quantity, unit_price_cents FROM order_items WHERE ",
    );
    D::push_any_of(&mut query, "order_id", &ids);
    query.push(" ORDER BY order_id, position");
    let sql = query.sql();
    let items: Vec<(D::Uuid, String, i32, i64)> = query
        .build_query_as()
        .fetch_all(executor)
        .traced(query_span(D::SYSTEM, "SELECT", "order_items", sql.as_str()))
        .await?;
    let items = items
        .into_iter()
        .map(|(order_id, sku, quantity, unit_price_cents)| {
            Ok(ItemRow {
                order_id: uuid::<D>(order_id)?.into(),
                sku,
                quantity,
                unit_price_cents,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(assemble(rows, items)?
        .into_iter()
        .zip(fingerprints)
        .collect())
}
