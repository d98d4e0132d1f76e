//! Headers across the edge, per upstream: which request headers travel to the service
//! as gRPC metadata, and which of its response metadata comes back to the client.
//!
//! Both directions are allow-lists ([`UpstreamOptions`]), empty by default: an
//! internal header must not leak out, nor a client's header reach a service that did
//! not ask for it. The exception is grpc-gateway's prefix: a request header
//! `Grpc-Metadata-<key>` is sent as `<key>`. Keys the gateway sets itself
//! (`authorization`, `x-request-id`, `x-forwarded-*`) or that gRPC reserves are never
//! taken from the client, so a client cannot pass as someone else or as somewhere
//! else.
//!
//! The gateway tells the service where the request came from, as a proxy does:
//! `x-forwarded-for` (the client's address, trusted proxies aware: see
//! [`ClientAddresses`]), `x-forwarded-host` and `x-forwarded-proto`.

use std::collections::HashSet;
use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use tonic::metadata::MetadataMap;

use crate::client_address::ClientAddresses;
use crate::settings::{UpstreamOptions, is_reserved_metadata};

/// Prefix of request headers sent as metadata, and of response headers made from
/// the service's response metadata.
pub const METADATA_PREFIX: &str = "grpc-metadata-";
/// Prefix of response headers made from the service's trailers.
pub const TRAILER_PREFIX: &str = "grpc-trailer-";

/// The header rules of one upstream.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    request: Vec<HeaderName>,
    response: HashSet<String>,
}

impl HeaderRules {
    /// The rules of `options` (names already validated by the settings).
    pub fn new(options: &UpstreamOptions) -> Self {
        let lower = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !is_reserved_metadata(n))
                .collect()
        };
        Self {
            request: lower(&options.forward_request_headers)
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
            response: lower(&options.forward_response_metadata)
                .into_iter()
                .collect(),
        }
    }

    /// The client's headers the service gets as metadata: the allow-listed ones
    /// under their own name, and `Grpc-Metadata-<key>` as `<key>`.
    pub fn outgoing(&self, headers: &HeaderMap) -> MetadataMap {
        // This map becomes the call's headers, which end up a dozen strong (the
        // `x-forwarded-*` trio, the token, the request id, the deadline, the trace
        // context, gRPC's own): made large enough once instead of growing on the way.
        let mut forwarded = HeaderMap::with_capacity(16 + self.request.len());
        for name in &self.request {
            for value in headers.get_all(name) {
                forwarded.append(name.clone(), value.clone());
            }
        }
        for (name, value) in headers {
            let Some(key) = name.as_str().strip_prefix(METADATA_PREFIX) else {
                continue;
            };
            if key.is_empty() || is_reserved_metadata(key) {
                continue;
            }
            if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
                forwarded.append(key, value.clone());
            }
        }
        MetadataMap::from_headers(forwarded)
    }

    /// Adds the allow-listed keys of `metadata` to `headers`, as `<prefix><key>`.
    pub fn returned(&self, metadata: &MetadataMap, prefix: &str, headers: &mut HeaderMap) {
        if self.response.is_empty() {
            return;
        }
        for (key, value) in metadata.clone().into_headers() {
            let Some(key) = key else { continue };
            if !self.response.contains(key.as_str()) {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(format!("{prefix}{key}").as_bytes()) {
                headers.append(name, value);
            }
        }
    }
}

/// `x-forwarded-for`, `-host` and `-proto` for the service. Behind a trusted proxy
/// its `X-Forwarded-Host` and `X-Forwarded-Proto` are kept (the first value: what the
/// outermost proxy saw); otherwise they are this request's `Host` and `http`.
pub fn forwarded(
    addresses: &ClientAddresses,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    metadata: &mut MetadataMap,
) {
    // Written as headers, with names made once: the metadata is a view of them.
    let mut forwarded = std::mem::take(metadata).into_headers();
    let behind_proxy = peer.is_some_and(|peer| addresses.trusts(peer));
    if let Some(peer) = peer
        && let Some(value) = address_value(addresses.resolve(peer, headers))
    {
        forwarded.insert(X_FORWARDED_FOR, value);
    }
    let first = |name: &HeaderName| {
        let value = headers.get(name)?;
        let first = value.to_str().ok()?.split(',').next()?.trim();
        // The client's own value, shared rather than copied, when it is one value.
        match first.len() {
            0 => None,
            n if n == value.len() => Some(value.clone()),
            _ => HeaderValue::from_str(first).ok(),
        }
    };
    let http = || HeaderValue::from_static("http");
    let (host, proto) = if behind_proxy {
        (
            first(&X_FORWARDED_HOST).or_else(|| first(&header::HOST)),
            first(&X_FORWARDED_PROTO).unwrap_or_else(http),
        )
    } else {
        (first(&header::HOST), http())
    };
    if let Some(host) = host {
        forwarded.insert(X_FORWARDED_HOST, host);
    }
    forwarded.insert(X_FORWARDED_PROTO, proto);
    *metadata = MetadataMap::from_headers(forwarded);
}

/// A client address as a header value; IPv4 (the common case) written without `fmt`.
fn address_value(address: IpAddr) -> Option<HeaderValue> {
    let IpAddr::V4(v4) = address else {
        return HeaderValue::from_str(&address.to_string()).ok();
    };
    let mut text = Vec::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push(b'.');
        }
        text.extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok()
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::address_value;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for address in [
            IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            IpAddr::V4(Ipv4Addr::new(255, 255, 255, 255)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let value = address_value(address).expect("a header value");
            assert_eq!(value.to_str().ok(), Some(address.to_string().as_str()));
        }
    }
}
