//! Channels to upstreams: one per URL, balanced over what its DNS name resolves to.
//!
//! An upstream URL with a DNS name is resolved periodically and every address it
//! yields becomes an endpoint of a balanced channel, so a Kubernetes headless Service
//! with several pods spreads load over all of them and follows scaling. An IP literal
//! is a single endpoint. Connections (HTTP/2 without TLS, `http://` URLs) are made
//! lazily with a short connect timeout, so a backend that is down fails fast
//! (UNAVAILABLE) and is used again as soon as it answers. Every endpoint, including
//! those the resolver adds later, gets the same connect timeout and HTTP/2
//! keep-alive, so a silently dead peer is noticed.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Uri;

use crate::Client;
use crate::connection::ConnectOptions;
use crate::pool::{self, Balanced, Membership, OutlierOptions};
use crate::retry::{RetryLayer, RetryOptions};

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not an `http://host[:port]` URL.
    #[error("invalid upstream URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The configured DNS server cannot be used.
    #[error("cannot resolve with the configured DNS server: {0}")]
    Resolver(#[source] std::io::Error),
}

/// How connections to upstreams are made, balanced and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelOptions {
    /// How long connecting may take before the call fails UNAVAILABLE.
    pub connect_timeout: Duration,
    /// How often an HTTP/2 PING checks an idle or busy connection.
    pub keep_alive_interval: Duration,
    /// How long a PING may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// How often DNS names are resolved again.
    pub resolve_every: Duration,
    /// When a failing endpoint is taken out of the balancer.
    pub outlier: OutlierOptions,
    /// Which failed calls are sent again.
    pub retry: RetryOptions,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            keep_alive_interval: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(10),
            resolve_every: Duration::from_secs(5),
            outlier: OutlierOptions::default(),
            retry: RetryOptions::default(),
        }
    }
}

impl ChannelOptions {
    /// How every endpoint's connection is made, so one the resolver adds later is
    /// configured exactly like the first.
    fn connect(&self) -> ConnectOptions {
        ConnectOptions {
            connect_timeout: self.connect_timeout,
            keep_alive_interval: self.keep_alive_interval,
            keep_alive_timeout: self.keep_alive_timeout,
        }
    }
}

/// Resolves an upstream's host name to the addresses to balance over.
pub trait Resolve: fmt::Debug + Send + Sync + 'static {
    /// Every address of `host`, with `port`.
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (`getaddrinfo`, so `/etc/hosts` and cluster DNS alike).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> BoxFuture<'static, std::io::Result<Vec<SocketAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            tokio::net::lookup_host((host.as_str(), port))
                .await
                .map(Iterator::collect)
        })
    }
}

/// The channels of a process, one per upstream URL: asking twice for a URL gives the
/// same connections and the same retry budget. Cheap to clone; clones share the
/// channels.
#[derive(Debug, Clone)]
pub struct Channels {
    options: ChannelOptions,
    resolver: Arc<dyn Resolve>,
    open: Arc<Mutex<HashMap<String, (Balanced, RetryLayer)>>>,
}

impl Channels {
    /// Channels made with `options`, resolving names with the system resolver.
    pub fn new(options: ChannelOptions) -> Self {
        Self::with_resolver(options, Arc::new(SystemResolver))
    }

    /// Channels resolving names with `resolver`.
    pub fn with_resolver(options: ChannelOptions, resolver: Arc<dyn Resolve>) -> Self {
        Self {
            options,
            resolver,
            open: Arc::default(),
        }
    }

    fn open(&self, url: &str) -> Result<(Balanced, RetryLayer), ClientError> {
        // The lock is never held across an await, and a panic while holding it leaves
        // the map consistent.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(shared) = open.get(url) {
            return Ok(shared.clone());
        }
        let channel = connect(url, &self.options, Arc::clone(&self.resolver))?;
        let shared = (channel, RetryLayer::new(self.options.retry.clone()));
        open.insert(url.to_owned(), shared.clone());
        Ok(shared)
    }

    /// The balanced channel to `url`, opened on first use (it connects on first
    /// call). Must be called inside a Tokio runtime: the channel gets a task that keeps
    /// its endpoints.
    pub fn channel(&self, url: &str) -> Result<Balanced, ClientError> {
        self.open(url).map(|(channel, _)| channel)
    }

    /// A [`Client`] of `url` on the shared channel, retrying within the upstream's
    /// shared budget; calls without a deadline of their own get `default_timeout`.
    pub fn client(&self, url: &str, default_timeout: Duration) -> Result<Client, ClientError> {
        let (channel, retry) = self.open(url)?;
        Ok(Client::with_retry(channel, url, default_timeout, retry))
    }
}

/// Opens a new channel to `url`. [`Channels::channel`] shares them; this does not.
fn connect(
    url: &str,
    options: &ChannelOptions,
    resolver: Arc<dyn Resolve>,
) -> Result<Balanced, ClientError> {
    let invalid = |reason| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URI"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "only http:// is supported (HTTP/2 without TLS, inside the cluster)",
        ));
    }
    let host = uri.host().ok_or_else(|| invalid("no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let membership = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => Membership::Fixed(SocketAddr::new(ip, port)),
        Err(_) => Membership::Resolved {
            resolve: Box::new(move || resolver.resolve(&host, port)),
            every: options.resolve_every,
        },
    };
    Ok(pool::balanced(
        url.to_owned(),
        options.connect(),
        options.outlier,
        membership,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_channel_per_url_and_bad_urls_are_refused() {
        let channels = Channels::new(ChannelOptions::default());
        channels
            .channel("http://127.0.0.1:1")
            .expect("an IP literal");
        channels.channel("http://localhost:1").expect("a DNS name");
        assert_eq!(channels.open.lock().map(|m| m.len()).ok(), Some(2));
        channels.channel("http://127.0.0.1:1").expect("shared");
        assert_eq!(channels.open.lock().map(|m| m.len()).ok(), Some(2));
        for bad in [
            "not a url",
            "https://127.0.0.1:1",
            "127.0.0.1:1",
            "http:///path",
        ] {
            assert!(
                matches!(channels.channel(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
