//! The gRPC services behind the gateway: one shared channel per upstream, and unary
//! calls with dynamic messages.
//!
//! An upstream URL with a DNS name is resolved periodically and every address it
//! yields becomes an endpoint of a balanced channel, so a Kubernetes headless Service
//! with several pods spreads load over all of them and follows scaling. An IP literal
//! is a single endpoint. Connections are made lazily with a short connect timeout, so
//! a backend that is down fails fast (UNAVAILABLE) and is used again as soon as it
//! answers.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Buf;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

/// How often DNS names of upstreams are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// Why an upstream URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Not an `http://host:port` URL.
    #[error("invalid upstream URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL from the settings.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// A channel to one upstream, balanced over its resolved addresses.
#[derive(Debug, Clone)]
pub struct Upstream {
    channel: Channel,
    url: String,
}

impl Upstream {
    /// Opens a channel to `url` that connects on first use. Must be called inside a
    /// Tokio runtime (DNS names get a resolver task).
    pub fn connect(url: &str, connect_timeout: Duration) -> Result<Self, UpstreamError> {
        let invalid = |reason: &str| UpstreamError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URI"))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        let host = uri.host().ok_or_else(|| invalid("no host"))?.to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let endpoint = |authority: &str| {
            Endpoint::from_shared(format!("{scheme}://{authority}"))
                .map(|e| {
                    e.connect_timeout(connect_timeout)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(30))
                        .keep_alive_while_idle(true)
                })
                .map_err(|_| invalid("not an endpoint"))
        };

        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<std::net::IpAddr>().is_ok() {
            let channel = endpoint(&format!("{host}:{port}"))?.connect_lazy();
            return Ok(Self {
                channel,
                url: url.to_owned(),
            });
        }

        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        let make = endpoint(&format!("{host}:{port}"))?;
        tokio::spawn(resolve_forever(host, port, scheme, make, changes));
        Ok(Self {
            channel,
            url: url.to_owned(),
        })
    }

    /// The URL this upstream was configured with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The shared channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Calls the unary method at `path` (`/pkg.Service/Method`) with `message`,
    /// decoding the answer as `output`.
    pub async fn unary(
        &self,
        path: &str,
        message: DynamicMessage,
        output: MessageDescriptor,
        metadata: MetadataMap,
        timeout: Duration,
    ) -> Result<(DynamicMessage, MetadataMap), Status> {
        let path = path
            .parse::<http::uri::PathAndQuery>()
            .map_err(|_| Status::internal("invalid method path"))?;
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        let mut request = tonic::Request::from_parts(metadata, tonic::Extensions::new(), message);
        request.set_timeout(timeout);
        let call = async move {
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
            grpc.unary(request, path, DynamicCodec { output }).await
        };
        let started = std::time::Instant::now();
        // The channel's own deadline handling covers the request; this also bounds
        // waiting for a connection or an endpoint to appear.
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => {
                let (metadata, message, _) = response.into_parts();
                Ok((message, metadata))
            }
            // A tonic server answers its own expired `grpc-timeout` with CANCELLED;
            // for the caller that is the deadline passing.
            Ok(Err(status)) if status.code() == Code::Cancelled && started.elapsed() >= timeout => {
                Err(Status::new(Code::DeadlineExceeded, "deadline exceeded"))
            }
            Ok(Err(status)) => Err(status),
            Err(_) => Err(Status::new(Code::DeadlineExceeded, "deadline exceeded")),
        }
    }
}

/// Keeps the balanced channel's endpoints equal to what `host` resolves to.
async fn resolve_forever(
    host: String,
    port: u16,
    scheme: String,
    template: Endpoint,
    changes: tokio::sync::mpsc::Sender<Change<SocketAddr, Endpoint>>,
) {
    let mut current: HashSet<SocketAddr> = HashSet::new();
    loop {
        match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(addrs) => {
                let resolved: HashSet<SocketAddr> = addrs.collect();
                for gone in current.difference(&resolved) {
                    if changes.send(Change::Remove(*gone)).await.is_err() {
                        return;
                    }
                }
                for new in resolved.difference(&current) {
                    let Ok(endpoint) = Endpoint::from_shared(format!("{scheme}://{new}")) else {
                        continue;
                    };
                    let endpoint = endpoint
                        .connect_timeout(
                            template
                                .get_connect_timeout()
                                .unwrap_or(Duration::from_secs(1)),
                        )
                        .tcp_nodelay(true);
                    if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                        return;
                    }
                }
                if resolved != current {
                    tracing::info!(upstream = %host, addresses = resolved.len(), "upstream endpoints updated");
                }
                current = resolved;
            }
            // Keep the last known endpoints: a DNS hiccup must not empty the pool.
            Err(error) => tracing::warn!(upstream = %host, %error, "cannot resolve upstream"),
        }
        tokio::time::sleep(RESOLVE_EVERY).await;
    }
}

/// Encodes dynamic requests and decodes responses of a known message type.
#[derive(Debug, Clone)]
struct DynamicCodec {
    output: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder {
            output: self.output.clone(),
        }
    }
}

#[derive(Debug)]
struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.reserve(item.encoded_len());
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode request: {e}")))
    }
}

#[derive(Debug)]
struct DynamicDecoder {
    output: MessageDescriptor,
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let bytes = src.copy_to_bytes(src.remaining());
        DynamicMessage::decode(self.output.clone(), bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("cannot decode response: {e}")))
    }
}
