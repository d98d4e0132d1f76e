//! The `[client]` section a service that calls others embeds in its settings: how
//! upstream names are resolved, retried and ejected. Connect timeouts and call
//! timeouts stay with each upstream's own settings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use platform_config::InvalidSetting;
use serde::{Deserialize, Serialize};

use crate::Channels;
use crate::channel::{ChannelOptions, ClientError, Resolve, SystemResolver};
use crate::dns::DnsServerResolver;
use crate::pool::OutlierOptions;
use crate::retry::RetryOptions;

/// How outgoing calls find, retry and avoid their upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    /// A DNS server (`127.0.0.1:5353`) to resolve upstream names with; the system
    /// resolver (`/etc/hosts`, `/etc/resolv.conf`) when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<SocketAddr>,
    /// How often upstream names are resolved again, so replicas that come and go
    /// are followed.
    pub resolve_every_ms: u64,
    /// Tries per call, the first included; 1 turns retries off.
    pub retry_max_attempts: u32,
    /// Retries allowed as a percentage of recent calls, on top of a floor of 10 a
    /// second.
    pub retry_budget_percent: u32,
    /// Failures in a row (connection errors, UNAVAILABLE) after which an endpoint is
    /// taken out of the balancer: for 1 s, then 2 s, 4 s... up to 30 s while it keeps
    /// failing.
    pub eject_after_failures: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            dns_server: None,
            resolve_every_ms: 5_000,
            retry_max_attempts: 3,
            retry_budget_percent: 20,
            eject_after_failures: 5,
        }
    }
}

impl ClientSettings {
    /// Checks the rules the types do not express; `section` prefixes the key named in
    /// the error (`client`).
    pub fn validate(&self, section: &str) -> Result<(), InvalidSetting> {
        let invalid = |field, reason| InvalidSetting::new(section, field, reason);
        if self.resolve_every_ms == 0 {
            return Err(invalid("resolve_every_ms", "must be positive"));
        }
        if self.retry_max_attempts == 0 {
            return Err(invalid("retry_max_attempts", "must be at least 1"));
        }
        if self.retry_budget_percent > 100 {
            return Err(invalid("retry_budget_percent", "must be at most 100"));
        }
        if self.eject_after_failures == 0 {
            return Err(invalid("eject_after_failures", "must be at least 1"));
        }
        Ok(())
    }

    /// Channel options from these settings, with `connect_timeout` and the methods
    /// safe to repeat (`/package.Service/Method`) of the caller.
    pub fn options(
        &self,
        connect_timeout: Duration,
        safe_methods: impl IntoIterator<Item = String>,
    ) -> ChannelOptions {
        ChannelOptions {
            connect_timeout,
            resolve_every: Duration::from_millis(self.resolve_every_ms),
            outlier: OutlierOptions {
                consecutive_failures: self.eject_after_failures,
                ..OutlierOptions::default()
            },
            retry: RetryOptions {
                max_attempts: self.retry_max_attempts,
                budget_ratio: self.retry_budget_percent as f32 / 100.0,
                safe_methods: safe_methods.into_iter().collect(),
                ..RetryOptions::default()
            },
            ..ChannelOptions::default()
        }
    }

    /// The resolver these settings name.
    pub fn resolver(&self) -> Result<Arc<dyn Resolve>, ClientError> {
        Ok(match self.dns_server {
            Some(server) => {
                Arc::new(DnsServerResolver::new(server).map_err(ClientError::Resolver)?)
            }
            None => Arc::new(SystemResolver),
        })
    }

    /// Channels made with `options` and the resolver these settings name.
    pub fn channels(&self, options: ChannelOptions) -> Result<Channels, ClientError> {
        Ok(Channels::with_resolver(options, self.resolver()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rules_name_the_key() {
        assert_eq!(ClientSettings::default().validate("client"), Ok(()));
        let zero = ClientSettings {
            retry_max_attempts: 0,
            ..ClientSettings::default()
        };
        assert_eq!(
            zero.validate("client").map_err(|e| e.key),
            Err("client.retry_max_attempts".to_owned())
        );
    }
}
