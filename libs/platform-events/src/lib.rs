//! Events between services over NATS JetStream.
//!
//! A service that changes something others care about writes an event row in the same
//! database transaction as the change (a transactional outbox): a rolled-back change
//! has no event, a committed one always has. A [`Relay`] owned by the service then
//! publishes the pending rows to JetStream, in order, and marks them sent once the
//! broker has acknowledged them. A service that reacts to events runs a [`Consumer`]:
//! a durable JetStream consumer whose handler applies each event once, in the same
//! transaction as its record of the event id.
//!
//! The guarantees, end to end: at least once on the wire (the event id is the
//! `Nats-Msg-Id`, so the broker drops a republished event within its duplicate
//! window), exactly once in effect (consumers store the ids they applied).
//!
//! # Layout
//!
//! - [`settings`]: the `[events]` section (`nats_url`, empty for no events).
//! - [`streams`]: the platform's streams and subjects, the one place they are named.
//! - [`outbox`]: the outbox row, written inside the caller's transaction.
//! - [`relay`]: the background task that publishes pending rows.
//! - [`consumer`]: a durable consumer that applies, retries and parks events.
//! - [`tail`]: a service's own events read back in order, live and from an event id
//!   on (from its stream, or from its outbox without a broker).

pub mod consumer;
pub mod outbox;
pub mod relay;
pub mod settings;
pub mod streams;
pub mod tail;
mod task;

pub use consumer::{Consumer, Delivery, HandleError, Handler, Subscription};
pub use outbox::{OutboxEvent, enqueue, new_event_id};
pub use relay::{Relay, RelayWaker};
pub use settings::EventsSettings;
pub use streams::StreamSpec;
pub use tail::{Followed, Follower, History, Record, ResumeError, Source};

/// Connects to NATS at `url`, in the background: the returned client queues what it
/// is asked to send and reconnects by itself, so a broker that is away at start (or
/// goes away later) delays events but never stops the service.
///
/// The error never shows the URL, which may carry credentials.
pub async fn connect(url: &str) -> Result<async_nats::Client, ConnectError> {
    Ok(async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(2))
        .connect(url.trim())
        .await?)
}

/// Why the broker settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("events broker: {0}")]
pub struct ConnectError(#[from] async_nats::ConnectError);
