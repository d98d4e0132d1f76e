//! Reading a service's own events back, in order: live as they are published, and
//! again from the one after an event a client names by id. What a resumable watch of
//! a service's changes is built on.
//!
//! A [`Source`] is one of two logs, each with its own positions:
//!
//! - **The service's JetStream stream**, when a broker is configured. Positions are
//!   stream sequences: one order, the same on every replica. The [`Follower`] reads it
//!   through an ephemeral consumer (in the broker's memory, removed 30 s after its
//!   process stops reading) that starts at the end of the stream as it was at start,
//!   and is created again after a broker failure from the position it had reached, so
//!   it skips nothing still retained. [`Source::resume`] finds the named event by
//!   scanning the stream from [`CLOCK_SKEW`] before the time in its id (event ids are
//!   UUIDv7, and an event is published after its id is made); an id made more than
//!   [`CLOCK_SKEW`] before the oldest event still in the stream is expired without a
//!   scan, and one the scan does not find is unknown.
//! - **The outbox table**, without a broker. Positions are outbox sequences. The
//!   follower reads the rows after its position whenever the service says it
//!   committed some ([`Source::committed`]) and every poll interval otherwise. On
//!   SQLite (one writer at a time) the sequence is the commit order and has no gaps.
//!   On PostgreSQL a transaction may commit after a later one, so a gap in the
//!   sequence is waited for up to [`GAP_WAIT`] before it is passed (a rolled-back
//!   transaction leaves one for good). A resume looks the named event up by id; an
//!   id older than the oldest row still there is expired, any other unknown.
//!
//! The follower's reads, and a resume's reads after its first, are background work
//! and make no spans; finding the resumed event happens inside the request and is
//! traced as part of it.
//!
//! Either way a follower reports where it starts ([`Followed::Start`]) before the
//! first record, and every record after that once, in order; a resume yields the
//! records after the named event up to a position the caller chooses (where its
//! follower had reached), so the two together miss nothing and repeat nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use bytes::Bytes;
use futures_util::StreamExt;
use platform_db::{Backend, Column, Database, TraceQuery, query_span};
use sqlx::{AssertSqlSafe, ColumnIndex, Executor, Pool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::settings::{Backoff, EventsSettings};
use crate::streams::StreamSpec;

/// How far the clocks of a service's replicas and of the broker may disagree: a resume
/// scans the stream from this long before the time in the event's id.
pub const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// How long the outbox follower waits for a missing sequence number (a transaction
/// still committing) before it passes it.
pub const GAP_WAIT: Duration = Duration::from_secs(2);

/// Rows read from the outbox at a time.
const PAGE: i64 = 256;

/// One event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where it is in its log (a stream sequence, or an outbox sequence).
    pub position: u64,
    /// Its event id (the `Nats-Msg-Id`), when it has one.
    pub event_id: Option<String>,
    /// The subject it was published on.
    pub subject: String,
    /// The full name of its protobuf message, when known.
    pub event_type: Option<String>,
    /// The encoded message.
    pub payload: Bytes,
}

/// What a follower reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The follower starts after this position: every later record follows. Sent
    /// once, before any record.
    Start(u64),
    /// The next record.
    Record(Record),
}

/// Why a resume cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No event with that id is known.
    #[error("no event has this id")]
    Unknown,
    /// The event is older than anything still kept.
    #[error("the event is no longer kept")]
    Expired,
    /// The broker or the database failed.
    #[error("reading the events failed: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ResumeError {
    fn unavailable(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(error.into())
    }
}

/// A service's own events, read back from its stream or its outbox.
#[derive(Debug, Clone)]
pub struct Source {
    inner: Inner,
    settings: EventsSettings,
}

#[derive(Debug, Clone)]
enum Inner {
    Stream {
        js: Box<jetstream::Context>,
        spec: StreamSpec,
    },
    Outbox {
        database: Database,
        committed: Arc<Notify>,
    },
}

impl Source {
    /// The events of `spec` on the broker behind `client`.
    pub fn stream(client: async_nats::Client, spec: StreamSpec, settings: &EventsSettings) -> Self {
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_millis(settings.publish_timeout_ms));
        Self {
            inner: Inner::Stream {
                js: Box::new(js),
                spec,
            },
            settings: settings.clone(),
        }
    }

    /// The events in `database`'s outbox.
    pub fn outbox(database: Database, settings: &EventsSettings) -> Self {
        Self {
            inner: Inner::Outbox {
                database,
                committed: Arc::new(Notify::new()),
            },
            settings: settings.clone(),
        }
    }

    /// Tells the outbox follower that a transaction with events has committed, so it
    /// reads them now rather than at its next poll. Nothing for a stream.
    pub fn committed(&self) {
        if let Inner::Outbox { committed, .. } = &self.inner {
            committed.notify_one();
        }
    }

    /// Whether the events come from the broker (else from the outbox).
    pub fn is_stream(&self) -> bool {
        matches!(self.inner, Inner::Stream { .. })
    }

    /// The records after event `event_id`, up to position `until` (inclusive).
    ///
    /// Fails before yielding anything when the event is unknown or no longer kept,
    /// or when the broker or the database cannot be read.
    pub async fn resume(&self, event_id: Uuid, until: u64) -> Result<History, ResumeError> {
        match &self.inner {
            Inner::Stream { js, spec } => {
                let wait = Duration::from_millis(self.settings.publish_timeout_ms);
                resume_stream(js, spec, event_id, until, wait).await
            }
            Inner::Outbox { database, .. } => resume_outbox(database, event_id, until).await,
        }
    }
}

/// The time in a UUIDv7, in nanoseconds since the Unix epoch.
fn event_nanos(id: Uuid) -> Option<i128> {
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i128::try_from(since.as_nanos()).unwrap_or(i128::MAX)
        })
}

fn nanos(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX)
}

async fn resume_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    event_id: Uuid,
    until: u64,
    wait: Duration,
) -> Result<History, ResumeError> {
    let made = event_nanos(event_id).ok_or(ResumeError::Unknown)?;
    let now = now_nanos();
    if made > now + nanos(CLOCK_SKEW) {
        return Err(ResumeError::Unknown);
    }
    let time = async_nats::datetime::from_nanos(made).map_err(|_| ResumeError::Unknown)?;
    let mut stream = js
        .get_stream(spec.name)
        .await
        .map_err(ResumeError::unavailable)?;
    let state = stream
        .info()
        .await
        .map_err(ResumeError::unavailable)?
        .state
        .clone();
    if state.messages == 0 {
        return Err(if made < now - nanos(spec.max_age) {
            ResumeError::Expired
        } else {
            ResumeError::Unknown
        });
    }
    // An event made before the oldest one still kept (give or take the clocks) was
    // dropped with the events before that one; the client lists again rather than
    // have this scan the whole stream to find nothing.
    let oldest = stream
        .get_raw_message(state.first_sequence)
        .await
        .ok()
        .and_then(|first| {
            let id = first.headers.get(async_nats::header::NATS_MESSAGE_ID)?;
            event_nanos(Uuid::parse_str(id.as_str()).ok()?)
        });
    if oldest.is_some_and(|oldest| made < oldest - nanos(CLOCK_SKEW)) {
        return Err(ResumeError::Expired);
    }
    let start_time = async_nats::datetime::from_nanos(made - nanos(CLOCK_SKEW)).unwrap_or(time);
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartTime { start_time },
            ack_policy: jetstream::consumer::AckPolicy::None,
            filter_subject: spec.subject.to_owned(),
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(ResumeError::unavailable)?;
    if consumer.cached_info().num_pending == 0 {
        return Err(ResumeError::Unknown);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(ResumeError::unavailable)?;
    let wanted = event_id.to_string();
    loop {
        let message = tokio::time::timeout(wait, messages.next())
            .await
            .map_err(ResumeError::unavailable)?
            .ok_or_else(|| ResumeError::unavailable("the broker ended the scan"))?
            .map_err(ResumeError::unavailable)?;
        let info = message.info().map_err(ResumeError::unavailable)?;
        let (position, pending) = (info.stream_sequence, info.pending);
        let record = stream_record(&message, position);
        let found = record.event_id.as_deref() == Some(wanted.as_str());
        if found {
            let done = pending == 0 || position >= until;
            return Ok(History {
                position,
                until,
                done,
                reader: Reader::Stream {
                    messages: Box::new(messages),
                    wait,
                },
            });
        }
        if pending == 0 {
            return Err(ResumeError::Unknown);
        }
    }
}

fn stream_record(message: &jetstream::Message, position: u64) -> Record {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|headers| headers.get(name))
            .map(|value| value.as_str().to_owned())
    };
    Record {
        position,
        event_id: header(async_nats::header::NATS_MESSAGE_ID.as_ref()),
        subject: message.subject.to_string(),
        event_type: header("Event-Type"),
        payload: message.payload.clone(),
    }
}

async fn resume_outbox(
    database: &Database,
    event_id: Uuid,
    until: u64,
) -> Result<History, ResumeError> {
    let found = match database {
        Database::Postgres(pool) => position_of(pool, event_id).await,
        Database::Sqlite(pool) => position_of(pool, event_id).await,
    }
    .map_err(ResumeError::unavailable)?;
    match found {
        Some(position) => Ok(History {
            position,
            until,
            done: position >= until,
            reader: Reader::Outbox {
                database: database.clone(),
                buffered: VecDeque::new(),
            },
        }),
        None => {
            let oldest = match database {
                Database::Postgres(pool) => oldest(pool).await,
                Database::Sqlite(pool) => oldest(pool).await,
            }
            .map_err(ResumeError::unavailable)?;
            let oldest = oldest.and_then(|oldest| oldest.timestamp_nanos_opt());
            let expired = match (event_nanos(event_id), oldest) {
                (Some(made), Some(oldest)) => made < i128::from(oldest),
                _ => false,
            };
            Err(if expired {
                ResumeError::Expired
            } else {
                ResumeError::Unknown
            })
        }
    }
}

/// The records after a resumed event, up to the position asked for.
#[derive(Debug)]
pub struct History {
    position: u64,
    until: u64,
    done: bool,
    reader: Reader,
}

enum Reader {
    Stream {
        messages: Box<pull::Stream>,
        wait: Duration,
    },
    Outbox {
        database: Database,
        buffered: VecDeque<Record>,
    },
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stream { .. } => "Reader::Stream",
            Self::Outbox { .. } => "Reader::Outbox",
        })
    }
}

impl History {
    /// The position of the resumed event itself.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next record, `None` once every record up to the limit was read.
    pub async fn next(&mut self) -> Option<Result<Record, ResumeError>> {
        if self.done {
            return None;
        }
        match &mut self.reader {
            Reader::Stream { messages, wait } => {
                let next = tokio::time::timeout(*wait, messages.next()).await;
                let message = match next {
                    Ok(Some(Ok(message))) => message,
                    Ok(Some(Err(error))) => return self.fail(ResumeError::unavailable(error)),
                    Ok(None) => {
                        return self.fail(ResumeError::unavailable("the broker ended the read"));
                    }
                    Err(elapsed) => return self.fail(ResumeError::unavailable(elapsed)),
                };
                let info = match message.info() {
                    Ok(info) => (info.stream_sequence, info.pending),
                    Err(error) => return self.fail(ResumeError::unavailable(error)),
                };
                let (position, pending) = info;
                if position > self.until {
                    self.done = true;
                    return None;
                }
                self.done = pending == 0 || position >= self.until;
                self.position = position;
                Some(Ok(stream_record(&message, position)))
            }
            Reader::Outbox { database, buffered } => {
                if buffered.is_empty() {
                    let page = read_outbox(database, self.position, self.until).await;
                    match page {
                        Ok(rows) => buffered.extend(rows),
                        Err(error) => return self.fail(ResumeError::unavailable(error)),
                    }
                }
                match buffered.pop_front() {
                    Some(record) => {
                        self.position = record.position;
                        Some(Ok(record))
                    }
                    None => {
                        self.done = true;
                        None
                    }
                }
            }
        }
    }

    fn fail(&mut self, error: ResumeError) -> Option<Result<Record, ResumeError>> {
        self.done = true;
        Some(Err(error))
    }
}

/// A running follower of a [`Source`]; stopped with [`Follower::stop`].
#[derive(Debug)]
pub struct Follower {
    worker: crate::task::Worker,
}

impl Follower {
    /// Follows `source` from its end, handing each report to `sink`, in order, until
    /// stopped. Failures are retried with a doubling backoff (logged once, and once
    /// more on recovery); nothing is skipped meanwhile.
    pub fn start(source: Source, sink: impl FnMut(Followed) + Send + 'static) -> Self {
        let worker = crate::task::Worker::spawn("event follower", move |cancel| {
            follow(source, sink, cancel)
        });
        Self { worker }
    }

    /// Stops following.
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

async fn follow(source: Source, mut sink: impl FnMut(Followed) + Send, cancel: CancellationToken) {
    let mut backoff = Backoff::new(source.settings.max_backoff_ms);
    let mut position: Option<u64> = None;
    let mut failing = false;
    tracing::info!(stream = source.is_stream(), "event follower started");
    loop {
        let run = async {
            match &source.inner {
                Inner::Stream { js, spec } => {
                    follow_stream(js, spec, &mut position, &mut sink, &mut failing).await
                }
                Inner::Outbox {
                    database,
                    committed,
                } => {
                    let poll = Duration::from_millis(source.settings.poll_interval_ms);
                    let follow = follow_outbox(database, committed, poll, &mut position, &mut sink);
                    follow.await
                }
            }
        };
        let outcome = tokio::select! {
            () = cancel.cancelled() => break,
            outcome = run => outcome,
        };
        if let Err(error) = outcome {
            if !failing {
                tracing::warn!(%error, "event follower failing; retrying with backoff");
            }
            failing = true;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(backoff.next()) => {}
        }
    }
    tracing::info!("event follower stopped");
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the stream after `position` (from its end, the first time) until the
/// subscription fails; the caller starts it again.
async fn follow_stream(
    js: &jetstream::Context,
    spec: &StreamSpec,
    position: &mut Option<u64>,
    sink: &mut (impl FnMut(Followed) + Send),
    failing: &mut bool,
) -> Result<(), BoxError> {
    let mut stream = spec.ensure(js).await?;
    let after = match *position {
        Some(after) => after,
        None => {
            let last = stream.info().await?.state.last_sequence;
            *position = Some(last);
            sink(Followed::Start(last));
            last
        }
    };
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ack_policy: jetstream::consumer::AckPolicy::None,
            filter_subject: spec.subject.to_owned(),
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    if std::mem::take(failing) {
        tracing::info!("event follower recovered");
    }
    // A consumer numbers what it delivers 1, 2, 3...: a jump means something was
    // missed, and the consumer is created again from the last position.
    let mut expected = 1;
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        if info.consumer_sequence != expected {
            return Err(format!(
                "delivery {} arrived where {expected} was due",
                info.consumer_sequence
            )
            .into());
        }
        expected += 1;
        let at = info.stream_sequence;
        if position.is_some_and(|p| at <= p) {
            continue;
        }
        *position = Some(at);
        sink(Followed::Record(stream_record(&message, at)));
    }
    Err("the broker ended the subscription".into())
}

/// Reads the outbox after `position` whenever told of a commit or every `poll`.
async fn follow_outbox(
    database: &Database,
    committed: &Notify,
    poll: Duration,
    position: &mut Option<u64>,
    sink: &mut (impl FnMut(Followed) + Send),
) -> Result<(), BoxError> {
    let after = match *position {
        Some(after) => after,
        None => {
            let last = match database {
                Database::Postgres(pool) => last_position(pool).await,
                Database::Sqlite(pool) => last_position(pool).await,
            }?;
            *position = Some(last);
            sink(Followed::Start(last));
            last
        }
    };
    let mut after = after;
    let mut gap_since: Option<tokio::time::Instant> = None;
    loop {
        let rows = read_outbox(database, after, u64::MAX).await?;
        let full = rows.len() >= usize::try_from(PAGE).unwrap_or(usize::MAX);
        for record in rows {
            if record.position != after + 1 {
                let since = *gap_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() < GAP_WAIT {
                    break;
                }
            }
            gap_since = None;
            after = record.position;
            *position = Some(after);
            sink(Followed::Record(record));
        }
        if full && gap_since.is_none() {
            continue;
        }
        let wait = if gap_since.is_some() {
            poll.min(Duration::from_millis(100))
        } else {
            poll
        };
        tokio::select! {
            () = committed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

const AFTER: &str = "SELECT seq, event_id, subject, event_type, payload FROM outbox \
     WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
const POSITION: &str = "SELECT seq FROM outbox WHERE event_id = $1";
const LAST: &str = "SELECT max(seq) FROM outbox";
const OLDEST: &str = "SELECT min(create_time) FROM outbox";

async fn read_outbox(
    database: &Database,
    after: u64,
    until: u64,
) -> Result<Vec<Record>, sqlx::Error> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let until = i64::try_from(until).unwrap_or(i64::MAX);
    match database {
        Database::Postgres(pool) => rows(pool, after, until).await,
        Database::Sqlite(pool) => rows(pool, after, until).await,
    }
}

/// seq, event_id, subject, event_type, payload.
type OutboxRow<K> = (i64, K, String, String, Vec<u8>);

async fn rows<D>(pool: &Pool<D>, after: i64, until: i64) -> Result<Vec<Record>, sqlx::Error>
where
    D: Backend,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    i64: Column<D>,
    String: Column<D>,
    Vec<u8>: Column<D>,
{
    let sql = D::sql(AFTER);
    let rows: Vec<OutboxRow<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(after)
        .bind(until)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, event_id, subject, event_type, payload)| Record {
            position: u64::try_from(seq).unwrap_or_default(),
            event_id: D::uuid_from_db(event_id).ok().map(|id| id.to_string()),
            subject,
            event_type: Some(event_type),
            payload: Bytes::from(payload),
        })
        .collect())
}

async fn position_of<D>(pool: &Pool<D>, event_id: Uuid) -> Result<Option<u64>, sqlx::Error>
where
    D: Backend,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    i64: Column<D>,
{
    let sql = D::sql(POSITION);
    let row: Option<(i64,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(D::uuid_to_db(event_id))
        .fetch_optional(pool)
        .traced(query_span(D::SYSTEM, "SELECT", "outbox", &sql))
        .await?;
    Ok(row.map(|(seq,)| u64::try_from(seq).unwrap_or_default()))
}

async fn last_position<D>(pool: &Pool<D>) -> Result<u64, sqlx::Error>
where
    D: Backend,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    Option<i64>: Column<D>,
{
    let (last,): (Option<i64>,) = sqlx::query_as(LAST).fetch_one(pool).await?;
    Ok(last.and_then(|seq| u64::try_from(seq).ok()).unwrap_or(0))
}

async fn oldest<D>(pool: &Pool<D>) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error>
where
    D: Backend,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    Option<chrono::DateTime<chrono::Utc>>: Column<D>,
{
    let (oldest,): (Option<chrono::DateTime<chrono::Utc>>,) = sqlx::query_as(OLDEST)
        .fetch_one(pool)
        .traced(query_span(D::SYSTEM, "SELECT", "outbox", OLDEST))
        .await?;
    Ok(oldest)
}
