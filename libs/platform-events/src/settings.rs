//! The `[events]` section of a service's settings.

use platform_config::InvalidSetting;
use serde::{Deserialize, Serialize};

/// Where events go and how they are relayed and consumed.
///
/// With `nats_url` empty (the embedded default) events are still written to the
/// outbox with every change, but nothing relays or consumes them: the service runs
/// without a broker, and setting a URL later publishes the backlog in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// `nats://host:port` of the NATS server with JetStream; empty for no broker.
    pub nats_url: String,
    /// How often the relay looks for pending events when there were none.
    pub poll_interval_ms: u64,
    /// Most events claimed and published in one round.
    pub batch_size: u32,
    /// Longest wait between retries while the broker (or the database) is away; the
    /// wait starts at 100 ms and doubles up to this.
    pub max_backoff_ms: u64,
    /// How long a published event waits for the broker's acknowledgement.
    pub publish_timeout_ms: u64,
    /// Deliveries of one event a consumer tries before parking it.
    pub max_attempts: u32,
    /// How long sent rows stay in the outbox (for inspection) before they are pruned.
    pub keep_sent_hours: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            nats_url: String::new(),
            poll_interval_ms: 200,
            batch_size: 100,
            max_backoff_ms: 5_000,
            publish_timeout_ms: 5_000,
            max_attempts: 5,
            keep_sent_hours: 24,
        }
    }
}

impl EventsSettings {
    /// Whether a broker is configured.
    pub fn enabled(&self) -> bool {
        !self.nats_url.trim().is_empty()
    }

    /// The first rule the settings break, under section `section`.
    pub fn validate(&self, section: &str) -> Result<(), InvalidSetting> {
        let url = self.nats_url.trim();
        if !(url.is_empty() || url.starts_with("nats://") || url.starts_with("tls://")) {
            return Err(InvalidSetting::new(
                section,
                "nats_url",
                "must be empty or a nats:// or tls:// URL",
            ));
        }
        for (key, value) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("batch_size", u64::from(self.batch_size)),
            ("max_backoff_ms", self.max_backoff_ms),
            ("publish_timeout_ms", self.publish_timeout_ms),
            ("max_attempts", u64::from(self.max_attempts)),
        ] {
            if value == 0 {
                return Err(InvalidSetting::new(section, key, "must be positive"));
            }
        }
        Ok(())
    }
}

/// Exponential backoff from 100 ms, doubling up to a ceiling.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: std::time::Duration,
    max: std::time::Duration,
}

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(100);

    pub(crate) fn new(max_ms: u64) -> Self {
        Self {
            next: Self::FIRST,
            max: std::time::Duration::from_millis(max_ms).max(Self::FIRST),
        }
    }

    /// The wait before the next retry; each call doubles the one after.
    pub(crate) fn next(&mut self) -> std::time::Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_url_is_optional_but_must_be_nats_when_set() {
        let mut settings = EventsSettings::default();
        assert!(!settings.enabled());
        assert!(settings.validate("events").is_ok());
        settings.nats_url = "http://127.0.0.1:4222".to_owned();
        assert_eq!(
            settings.validate("events").map_err(|e| e.key),
            Err("events.nats_url".to_owned())
        );
        settings.nats_url = "nats://127.0.0.1:4222".to_owned();
        assert!(settings.enabled());
        assert!(settings.validate("events").is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_starts_again_after_a_reset() {
        let mut backoff = Backoff::new(350);
        let waits: Vec<u128> = (0..4).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next().as_millis(), 100);
    }
}
