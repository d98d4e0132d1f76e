//! The relay: a background task that publishes the outbox's pending rows to
//! JetStream, in sequence order, and marks them sent once the broker acknowledged them.
//!
//! - **Once per event** even with several replicas relaying: on PostgreSQL a round
//!   claims its rows with `FOR UPDATE SKIP LOCKED` inside a transaction held until
//!   they are marked sent, so no two relays hold the same row; a relay whose claim does
//!   not start at the oldest pending row (another relay holds older ones) lets go and
//!   waits, so events leave in order. SQLite is one process: its relay reads and
//!   marks without a lock. A crash between the broker's ack and the mark republishes
//!   the row, and the broker drops it: the event id is the `Nats-Msg-Id`.
//! - **Never in the way of a request**: the RPC only wrote a row; a broker that is
//!   away makes the relay retry with a doubling backoff (100 ms up to
//!   `max_backoff_ms`), logging the outage once and the recovery once.
//! - **Soon after the commit**: an idle relay looks for rows every `poll_interval_ms`,
//!   and at once when the service tells it it committed some ([`RelayWaker::wake`]),
//!   unless it is backing off from a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use platform_db::{Database, TraceQuery, now, query_span};
use sqlx::{PgPool, Postgres, QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::settings::{Backoff, EventsSettings};
use crate::streams::StreamSpec;

/// Why a relay round stopped early; the rows not yet marked are retried.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The outbox could not be read or marked.
    #[error("outbox: {0}")]
    Database(#[from] sqlx::Error),
    /// The stream could not be created.
    #[error("creating stream: {0}")]
    Stream(#[from] jetstream::context::CreateStreamError),
    /// The broker did not take an event.
    #[error("publishing: {0}")]
    Publish(#[from] jetstream::context::PublishError),
}

impl RelayError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Database(_) => "database",
            Self::Stream(_) | Self::Publish(_) => "broker",
        }
    }
}

/// A pending outbox row.
#[derive(Debug)]
struct Pending {
    seq: i64,
    event_id: String,
    subject: String,
    event_type: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

type PendingRow<K> = (
    i64,
    K,
    String,
    String,
    Vec<u8>,
    Option<String>,
    Option<String>,
);

const CLAIM: &str = "SELECT seq, event_id, subject, event_type, payload, traceparent, tracestate \
     FROM outbox WHERE sent_time IS NULL ORDER BY seq LIMIT $1";
const OLDEST: &str = "SELECT min(seq) FROM outbox WHERE sent_time IS NULL";
const PRUNE: &str = "DELETE FROM outbox WHERE sent_time IS NOT NULL AND sent_time < $1";
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What one round did.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// Published this many events (0: nothing was pending).
    Published(usize),
    /// Another relay holds older events: wait for it.
    Busy,
}

/// The relay task of one service; stopped with [`Relay::stop`].
#[derive(Debug)]
pub struct Relay {
    worker: crate::task::Worker,
    wake: Arc<Notify>,
}

/// Tells a relay that rows were committed, so it publishes them now rather than at
/// its next poll.
#[derive(Debug, Clone)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Rows were committed; a relay that is not backing off looks for them at once.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

struct Worker {
    database: Database,
    js: jetstream::Context,
    stream: StreamSpec,
    settings: EventsSettings,
    wake: Arc<Notify>,
}

impl Relay {
    /// Starts relaying `database`'s outbox to `stream` through `client`; the stream is
    /// created first (idempotent), retried until the broker answers.
    pub fn start(
        database: Database,
        client: async_nats::Client,
        stream: StreamSpec,
        settings: &EventsSettings,
    ) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_millis(settings.publish_timeout_ms));
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            database,
            js,
            stream,
            settings: settings.clone(),
            wake: Arc::clone(&wake),
        };
        Self {
            worker: crate::task::Worker::spawn("event relay", |cancel| worker.run(cancel)),
            wake,
        }
    }

    /// What tells this relay of commits.
    pub fn waker(&self) -> RelayWaker {
        RelayWaker(Arc::clone(&self.wake))
    }

    /// Stops the relay after the round in flight (a round cut short leaves its rows
    /// pending: they are published again later, and deduplicated by the broker).
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

impl Worker {
    async fn run(self, cancel: CancellationToken) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let mut backoff = Backoff::new(self.settings.max_backoff_ms);
        let mut stream_ready = false;
        let mut failing: Option<&'static str> = None;
        let mut pruned = Instant::now();
        tracing::info!(stream = self.stream.name, "event relay started");
        loop {
            let round = async {
                if !stream_ready {
                    self.stream.ensure(&self.js).await?;
                    stream_ready = true;
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    self.prune().await?;
                    pruned = Instant::now();
                }
                self.round().await
            };
            let outcome = tokio::select! {
                () = cancel.cancelled() => break,
                outcome = round => outcome,
            };
            let wait = match outcome {
                Ok(round) => {
                    if let Some(reason) = failing.take() {
                        tracing::info!(stream = self.stream.name, reason, "event relay recovered");
                    }
                    backoff.reset();
                    match round {
                        Round::Published(n) if n >= self.settings.batch_size as usize => continue,
                        _ => poll,
                    }
                }
                Err(error) => {
                    let reason = error.reason();
                    metrics::counter!("events_relay_failures_total", "stream" => self.stream.name, "reason" => reason)
                        .increment(1);
                    if failing.is_none() {
                        tracing::warn!(stream = self.stream.name, reason, %error, "event relay failing; retrying with backoff");
                    }
                    failing = Some(reason);
                    if matches!(error, RelayError::Stream(_)) {
                        stream_ready = false;
                    }
                    backoff.next()
                }
            };
            // A commit cuts an idle wait short, never a backoff: a broker that is away
            // is not asked again on every request.
            let idle = failing.is_none();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified(), if idle => {}
            }
        }
        tracing::info!(stream = self.stream.name, "event relay stopped");
    }

    async fn round(&self) -> Result<Round, RelayError> {
        let limit = i64::from(self.settings.batch_size);
        match &self.database {
            Database::Postgres(pool) => self.round_postgres(pool, limit).await,
            Database::Sqlite(pool) => self.round_sqlite(pool, limit).await,
        }
    }

    async fn round_postgres(&self, pool: &PgPool, limit: i64) -> Result<Round, RelayError> {
        let mut tx = pool
            .begin()
            .traced(query_span("postgresql", "BEGIN", "", "BEGIN"))
            .await?;
        let sql = format!("{CLAIM} FOR UPDATE SKIP LOCKED");
        let rows: Vec<PendingRow<Uuid>> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(limit)
            .fetch_all(&mut *tx)
            .traced(query_span("postgresql", "SELECT", "outbox", &sql))
            .await?;
        let Some(first) = rows.first() else {
            return Ok(Round::Published(0));
        };
        let (oldest,): (Option<i64>,) = sqlx::query_as(OLDEST)
            .fetch_one(&mut *tx)
            .traced(query_span("postgresql", "SELECT", "outbox", OLDEST))
            .await?;
        if oldest != Some(first.0) {
            return Ok(Round::Busy);
        }
        let rows: Vec<Pending> = rows.into_iter().map(pending).collect();
        let (sent, failure) = self.publish(&rows).await;
        if !sent.is_empty() {
            let mut update = QueryBuilder::<Postgres>::new("UPDATE outbox SET sent_time = ");
            update
                .push_bind(now())
                .push(" WHERE seq = ANY(")
                .push_bind(sent.clone())
                .push(")");
            let sql = update.sql();
            update
                .build()
                .execute(&mut *tx)
                .traced(query_span("postgresql", "UPDATE", "outbox", sql.as_str()))
                .await?;
        }
        tx.commit()
            .traced(query_span("postgresql", "COMMIT", "", "COMMIT"))
            .await?;
        match failure {
            Some(error) => Err(error),
            None => Ok(Round::Published(sent.len())),
        }
    }

    async fn round_sqlite(&self, pool: &SqlitePool, limit: i64) -> Result<Round, RelayError> {
        // One process writes a SQLite file, and it runs one relay: no claim needed. A
        // transaction held across the publishing would block every writer meanwhile.
        let sql = CLAIM.replace('$', "?");
        let rows: Vec<PendingRow<String>> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(limit)
            .fetch_all(pool)
            .traced(query_span("sqlite", "SELECT", "outbox", &sql))
            .await?;
        if rows.is_empty() {
            return Ok(Round::Published(0));
        }
        let rows: Vec<Pending> = rows.into_iter().map(pending).collect();
        let (sent, failure) = self.publish(&rows).await;
        if !sent.is_empty() {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE outbox SET sent_time = ");
            update.push_bind(now()).push(" WHERE seq IN (");
            let mut list = update.separated(", ");
            for seq in &sent {
                list.push_bind(*seq);
            }
            update.push(")");
            let sql = update.sql();
            update
                .build()
                .execute(pool)
                .traced(query_span("sqlite", "UPDATE", "outbox", sql.as_str()))
                .await?;
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(Round::Published(sent.len())),
        }
    }

    /// Publishes `rows` one after the other, each waiting for its ack, so that they
    /// enter the stream in order; stops at the first failure. The sequences published.
    async fn publish(&self, rows: &[Pending]) -> (Vec<i64>, Option<RelayError>) {
        let mut sent = Vec::with_capacity(rows.len());
        for row in rows {
            let mut message = PublishMessage::build()
                .payload(Bytes::from(row.payload.clone()))
                .message_id(&row.event_id)
                .header("Content-Type", "application/protobuf")
                .header("Event-Type", row.event_type.as_str());
            if let Some(traceparent) = &row.traceparent {
                message = message.header("traceparent", traceparent.as_str());
            }
            if let Some(tracestate) = &row.tracestate {
                message = message.header("tracestate", tracestate.as_str());
            }
            let acked = match self.js.send_publish(row.subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(error) => Err(error),
            };
            if let Err(error) = acked {
                return (sent, Some(error.into()));
            }
            metrics::counter!("events_published_total", "stream" => self.stream.name).increment(1);
            tracing::debug!(event.id = %row.event_id, subject = %row.subject, "event published");
            sent.push(row.seq);
        }
        (sent, None)
    }

    async fn prune(&self) -> Result<(), RelayError> {
        let keep = chrono::Duration::hours(
            i64::try_from(self.settings.keep_sent_hours).unwrap_or(i64::MAX / 3_600_000),
        );
        let before = now() - keep;
        match &self.database {
            Database::Postgres(pool) => {
                sqlx::query(PRUNE)
                    .bind(before)
                    .execute(pool)
                    .traced(query_span("postgresql", "DELETE", "outbox", PRUNE))
                    .await?;
            }
            Database::Sqlite(pool) => {
                let sql = PRUNE.replace('$', "?");
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(before)
                    .execute(pool)
                    .traced(query_span("sqlite", "DELETE", "outbox", &sql))
                    .await?;
            }
        }
        Ok(())
    }
}

fn pending<K: ToString>(
    (seq, event_id, subject, event_type, payload, traceparent, tracestate): PendingRow<K>,
) -> Pending {
    Pending {
        seq,
        event_id: event_id.to_string(),
        subject,
        event_type,
        payload,
        traceparent,
        tracestate,
    }
}
