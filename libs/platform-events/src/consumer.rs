//! A durable JetStream consumer that applies each event once.
//!
//! The [`Handler`] applies an event in one database transaction that also records the
//! event id (so a redelivered event is recognised and skipped); the message is acked
//! only after that commit. A failed event is delivered again after a doubling delay;
//! after `max_attempts` deliveries, or at once when it cannot be read at all, it is
//! *parked*: handed to [`Handler::park`] (which keeps it for an operator), terminated
//! on the broker so it is not delivered again, counted in `events_parked_total` and
//! logged at error level with its id, subject and stream sequence.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::settings::{Backoff, EventsSettings};
use crate::streams::StreamSpec;

/// One delivery of an event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subject it was published on.
    pub subject: String,
    /// The encoded message.
    pub payload: Bytes,
    /// Its `Nats-Msg-Id` (the event id), if it has one.
    pub message_id: Option<String>,
    /// Which delivery this is, from 1.
    pub attempt: u32,
    /// Its sequence in the stream: where an operator finds it again.
    pub stream_sequence: u64,
}

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// It can never be applied (it does not decode, names no valid id): parked at once.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// Applying it failed (the database, say): delivered again later.
    #[error("applying the event failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a consumer does with its events.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` once: in one transaction with the record of its id, doing
    /// nothing (and succeeding) when that id was applied before.
    async fn apply(&self, event: &Delivery) -> Result<(), HandleError>;

    /// Keeps `event`, which will not be applied, for an operator to look at.
    async fn park(&self, event: &Delivery, reason: &HandleError) -> Result<(), HandleError>;
}

/// Which events a consumer reads, under which durable name.
#[derive(Debug, Clone, Copy)]
pub struct Subscription {
    /// The stream read from (created if missing, with its usual configuration).
    pub stream: StreamSpec,
    /// The durable consumer's name: every replica of the service shares it, so each
    /// event goes to one of them.
    pub durable: &'static str,
    /// The subject filter.
    pub subject: &'static str,
}

/// A running consumer; stopped with [`Consumer::stop`].
#[derive(Debug)]
pub struct Consumer {
    worker: crate::task::Worker,
}

struct Worker {
    js: jetstream::Context,
    subscription: Subscription,
    handler: Arc<dyn Handler>,
    settings: EventsSettings,
}

impl Consumer {
    /// Starts consuming `subscription` through `client` with `handler`; the consumer
    /// is created (idempotent) and re-created after broker failures, with backoff.
    pub fn start(
        client: async_nats::Client,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
        settings: &EventsSettings,
    ) -> Self {
        let worker = Worker {
            js: jetstream::new(client),
            subscription,
            handler,
            settings: settings.clone(),
        };
        Self {
            worker: crate::task::Worker::spawn("event consumer", |cancel| worker.run(cancel)),
        }
    }

    /// Stops after the event in flight; an event not yet acked is delivered again.
    pub async fn stop(self) {
        self.worker.stop().await;
    }
}

impl Worker {
    async fn run(self, cancel: CancellationToken) {
        let durable = self.subscription.durable;
        let mut backoff = Backoff::new(self.settings.max_backoff_ms);
        tracing::info!(
            consumer = durable,
            subject = self.subscription.subject,
            "event consumer started"
        );
        loop {
            let messages = tokio::select! {
                () = cancel.cancelled() => break,
                messages = self.messages() => messages,
            };
            match messages {
                Ok(mut messages) => {
                    backoff.reset();
                    loop {
                        let next = tokio::select! {
                            () = cancel.cancelled() => break,
                            next = messages.next() => next,
                        };
                        match next {
                            Some(Ok(message)) => self.process(message).await,
                            Some(Err(error)) => {
                                tracing::warn!(consumer = durable, %error, "event consumer lost its subscription; subscribing again");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(consumer = durable, %error, "event consumer cannot subscribe; retrying with backoff");
                }
            }
            if cancel.is_cancelled() {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(backoff.next()) => {}
            }
        }
        tracing::info!(consumer = durable, "event consumer stopped");
    }

    async fn messages(&self) -> Result<pull::Stream, async_nats::Error> {
        let stream = self.subscription.stream.ensure(&self.js).await?;
        let consumer = stream
            .get_or_create_consumer(
                self.subscription.durable,
                pull::Config {
                    durable_name: Some(self.subscription.durable.to_owned()),
                    filter_subject: self.subscription.subject.to_owned(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    // Parking is ours (with a record and a metric); the broker never gives up.
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await?;
        Ok(consumer.messages().await?)
    }

    async fn process(&self, message: jetstream::Message) {
        let durable = self.subscription.durable;
        let (attempt, stream_sequence) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                info.stream_sequence,
            ),
            Err(error) => {
                tracing::warn!(consumer = durable, %error, "message without JetStream metadata; ignored");
                return;
            }
        };
        let mut trace = http::HeaderMap::new();
        let mut message_id = None;
        if let Some(headers) = &message.headers {
            for name in ["traceparent", "tracestate"] {
                if let Some(value) = headers.get(name)
                    && let Ok(value) = http::HeaderValue::from_str(value.as_str())
                {
                    trace.insert(name, value);
                }
            }
            message_id = headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .map(|v| v.as_str().to_owned());
        }
        let delivery = Delivery {
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
            message_id,
            attempt,
            stream_sequence,
        };
        let span = tracing::info_span!(
            "process",
            otel.name = format!("process {}", delivery.subject),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.operation.type = "process",
            messaging.destination.name = %delivery.subject,
            messaging.consumer.group.name = durable,
            messaging.message.id = delivery.message_id.as_deref().unwrap_or(""),
        );
        platform_telemetry::propagation::continue_trace(&span, &trace);
        async {
            match self.handler.apply(&delivery).await {
                Ok(()) => {
                    if let Err(error) = message.ack().await {
                        // Applied and committed: the redelivery is recognised and skipped.
                        tracing::warn!(consumer = durable, %error, "ack failed; the event will be delivered again");
                    }
                    metrics::counter!("events_consumed_total", "consumer" => durable, "outcome" => "applied").increment(1);
                }
                Err(error) => {
                    let give_up = matches!(error, HandleError::Malformed(_))
                        || attempt >= self.settings.max_attempts;
                    if give_up {
                        self.park(&message, &delivery, &error).await;
                    } else {
                        let delay = retry_delay(attempt, self.settings.max_backoff_ms);
                        tracing::warn!(consumer = durable, attempt, %error, retry_in_ms = delay.as_millis() as u64, "event not applied; will retry");
                        metrics::counter!("events_consumed_total", "consumer" => durable, "outcome" => "retried").increment(1);
                        if let Err(error) = message.ack_with(AckKind::Nak(Some(delay))).await {
                            tracing::warn!(consumer = durable, %error, "nak failed; the event comes back after the ack wait");
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    async fn park(&self, message: &jetstream::Message, delivery: &Delivery, reason: &HandleError) {
        let durable = self.subscription.durable;
        if let Err(error) = self.handler.park(delivery, reason).await {
            tracing::warn!(consumer = durable, %error, "parking failed; the event will be delivered again");
            let delay = retry_delay(delivery.attempt, self.settings.max_backoff_ms);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            return;
        }
        if let Err(error) = message.ack_with(AckKind::Term).await {
            tracing::warn!(consumer = durable, %error, "terminating a parked event failed");
        }
        metrics::counter!("events_parked_total", "consumer" => durable).increment(1);
        metrics::counter!("events_consumed_total", "consumer" => durable, "outcome" => "parked")
            .increment(1);
        tracing::error!(
            consumer = durable,
            subject = %delivery.subject,
            event.id = delivery.message_id.as_deref().unwrap_or(""),
            stream.sequence = delivery.stream_sequence,
            attempts = delivery.attempt,
            %reason,
            "event parked"
        );
    }
}

/// The delay before delivery `attempt + 1`: 100 ms doubling per attempt, capped.
fn retry_delay(attempt: u32, max_ms: u64) -> Duration {
    let ms = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(ms.min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_the_ceiling() {
        let waits: Vec<u128> = (1..=6).map(|a| retry_delay(a, 1_000).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
    }
}
