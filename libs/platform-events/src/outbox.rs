//! The outbox: events written in the transaction of the change they describe.
//!
//! Each service has an `outbox` table (its own migration, the same shape on both
//! backends): a sequence that orders the rows, the event id, its subject and type,
//! the encoded message, the W3C trace context of the request that wrote it, and
//! `sent_time`, set once the broker acknowledged it. Rows are pruned a while after
//! they were sent.

use chrono::{DateTime, Utc};
use platform_db::{Backend, Column, TraceQuery, query_span};
use sqlx::{AssertSqlSafe, Executor};
use uuid::Uuid;

/// One event, ready to be written next to the change it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Unique per event; the message's `Nats-Msg-Id`, which consumers deduplicate by.
    pub id: Uuid,
    /// Where it is published (`orders.v1.order.created`, ...).
    pub subject: &'static str,
    /// The full name of its protobuf message (`orders.v1.OrderCreated`).
    pub event_type: &'static str,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// The `traceparent` of the request that caused it, if it was traced.
    pub traceparent: Option<String>,
    /// Its `tracestate`.
    pub tracestate: Option<String>,
    /// When it happened.
    pub occur_time: DateTime<Utc>,
}

impl OutboxEvent {
    /// An event of `event_type` on `subject`, carrying the trace context of the
    /// current span so that its consumers continue the request's trace.
    pub fn new(
        id: Uuid,
        subject: &'static str,
        event_type: &'static str,
        payload: Vec<u8>,
        occur_time: DateTime<Utc>,
    ) -> Self {
        let headers = platform_telemetry::propagation::current();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            id,
            subject,
            event_type,
            payload,
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
            occur_time,
        }
    }
}

/// A fresh event id: a UUIDv7, so ids sort by time.
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// Writes `event` to the outbox on `conn`, which is inside the transaction of the
/// change: both commit or neither does.
pub async fn enqueue<D>(conn: &mut D::Connection, event: &OutboxEvent) -> Result<(), sqlx::Error>
where
    D: Backend,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    String: Column<D>,
    Option<String>: Column<D>,
    Vec<u8>: Column<D>,
    DateTime<Utc>: Column<D>,
{
    let sql = D::sql(
        "INSERT INTO outbox (event_id, subject, event_type, payload, traceparent, tracestate, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    );
    sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(D::uuid_to_db(event.id))
        .bind(event.subject.to_owned())
        .bind(event.event_type.to_owned())
        .bind(event.payload.clone())
        .bind(event.traceparent.clone())
        .bind(event.tracestate.clone())
        .bind(event.occur_time)
        .execute(conn)
        .traced(query_span(D::SYSTEM, "INSERT", "outbox", &sql))
        .await?;
    Ok(())
}
