//! [`OrderStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::observe::POSTGRESQL;
use platform_db::{TraceQuery, query_span};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{
    Cancelled, Created, Filter, ItemRow, NewOrder, OrderRow, OrderStore, StoreError, assemble,
    existing, now,
};
use crate::domain::{Order, OrderId, OrderStatus};

type Row = (
    Uuid,
    Uuid,
    i64,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

const COLUMNS: &str =
    "id, user_id, total_cents, status, request_fingerprint, create_time, update_time";

fn order_row(
    (id, user_id, total_cents, status, fingerprint, create_time, update_time): Row,
) -> OrderRow {
    OrderRow {
        id: id.into(),
        user_id: user_id.into(),
        total_cents,
        status,
        fingerprint,
        create_time,
        update_time,
    }
}

/// Orders in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgOrderStore {
    pool: PgPool,
}

impl PgOrderStore {
    /// A store over `pool`, whose database is migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Orders with their items, and each order's stored fingerprint.
    async fn with_items(&self, rows: Vec<Row>) -> Result<Vec<(Order, String)>, StoreError> {
        let rows: Vec<OrderRow> = rows.into_iter().map(order_row).collect();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
        let fingerprints: Vec<String> = rows.iter().map(|r| r.fingerprint.clone()).collect();
        let sql = "SELECT order_id, sku, quantity, unit_price_cents FROM order_items \
             WHERE order_id = ANY($1) ORDER BY order_id, position";
        let items: Vec<(Uuid, String, i32, i64)> = sqlx::query_as(sql)
            .bind(&ids)
            .fetch_all(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "order_items", sql))
            .await?;
        let items = items
            .into_iter()
            .map(|(order_id, sku, quantity, unit_price_cents)| ItemRow {
                order_id: order_id.into(),
                sku,
                quantity,
                unit_price_cents,
            })
            .collect();
        Ok(assemble(rows, items)?
            .into_iter()
            .zip(fingerprints)
            .collect())
    }

    async fn one(&self, row: Option<Row>) -> Result<Option<(Order, String)>, StoreError> {
        match row {
            Some(row) => Ok(self.with_items(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl OrderStore for PgOrderStore {
    async fn create(&self, order: &NewOrder) -> Result<Created, StoreError> {
        let at = now();
        let mut tx = self
            .pool
            .begin()
            .traced(query_span(POSTGRESQL, "BEGIN", "", "BEGIN"))
            .await?;
        // A racing insert with the same key waits here for the first one to commit,
        // then inserts nothing.
        let sql = format!(
            "INSERT INTO orders (id, user_id, request_id, request_fingerprint, total_cents, status, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
             ON CONFLICT (user_id, request_id) DO NOTHING \
             RETURNING {COLUMNS}"
        );
        let inserted: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(order.id.as_uuid())
            .bind(order.user_id.as_uuid())
            .bind(order.request_id.as_deref())
            .bind(order.items.fingerprint())
            .bind(order.items.total_cents())
            .bind(at)
            .fetch_optional(&mut *tx)
            .traced(query_span(POSTGRESQL, "INSERT", "orders", &sql))
            .await?;

        let Some(row) = inserted else {
            tx.rollback()
                .traced(query_span(POSTGRESQL, "ROLLBACK", "", "ROLLBACK"))
                .await?;
            let sql =
                format!("SELECT {COLUMNS} FROM orders WHERE user_id = $1 AND request_id = $2");
            let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(order.user_id.as_uuid())
                .bind(order.request_id.as_deref())
                .fetch_optional(&self.pool)
                .traced(query_span(POSTGRESQL, "SELECT", "orders", &sql))
                .await?;
            let (stored, fingerprint) = self.one(row).await?.ok_or_else(|| {
                StoreError::Corrupt("idempotency conflict without a stored order".to_owned())
            })?;
            return Ok(existing(stored, &fingerprint, order));
        };

        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_cents) ",
        );
        insert.push_values(
            order.items.items().iter().enumerate(),
            |mut b, (position, item)| {
                b.push_bind(order.id.as_uuid())
                    .push_bind(i32::try_from(position).unwrap_or(i32::MAX))
                    .push_bind(item.sku.as_str())
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
                POSTGRESQL,
                "INSERT",
                "order_items",
                items_sql.as_str(),
            ))
            .await?;
        tx.commit()
            .traced(query_span(POSTGRESQL, "COMMIT", "", "COMMIT"))
            .await?;

        let row = order_row(row);
        Ok(Created::New(Order {
            id: row.id,
            user_id: row.user_id,
            items: order.items.items().to_vec(),
            total_cents: row.total_cents,
            status: OrderStatus::Pending,
            create_time: row.create_time,
            update_time: row.update_time,
        }))
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE id = $1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "orders", &sql))
            .await?;
        Ok(self.one(row).await?.map(|(order, _)| order))
    }

    async fn list(
        &self,
        filter: Filter,
        limit: u32,
        after: Option<OrderId>,
    ) -> Result<Vec<Order>, StoreError> {
        // Keyset paging on the primary key (or the (user_id, id) index): each page
        // costs the same however deep it is.
        let sql = format!(
            "SELECT {COLUMNS} FROM orders \
             WHERE ($1::uuid IS NULL OR user_id = $1) \
               AND ($2::text IS NULL OR status = $2) \
               AND ($3::uuid IS NULL OR id < $3) \
             ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(filter.user_id.map(|u| u.as_uuid()))
            .bind(filter.status.map(OrderStatus::as_db))
            .bind(after.map(|id| id.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "orders", &sql))
            .await?;
        Ok(self
            .with_items(rows)
            .await?
            .into_iter()
            .map(|(o, _)| o)
            .collect())
    }

    async fn cancel(&self, id: OrderId) -> Result<Cancelled, StoreError> {
        // Conditional update: of two concurrent cancels, the second waits for the
        // first's row lock, re-checks the condition, and updates nothing.
        let sql = format!(
            "UPDATE orders SET status = 'cancelled', update_time = $2 \
             WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
        );
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .bind(now())
            .fetch_optional(&self.pool)
            .traced(query_span(POSTGRESQL, "UPDATE", "orders", &sql))
            .await?;
        if let Some((order, _)) = self.one(row).await? {
            return Ok(Cancelled::Done(order));
        }
        Ok(match self.get(id).await? {
            Some(order) => Cancelled::NotPending(order),
            None => Cancelled::NotFound,
        })
    }
}
