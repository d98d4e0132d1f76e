//! The gRPC services behind the gateway: unary calls with dynamic messages over the
//! shared, balanced [`platform_client::Client`] of each upstream.
//!
//! The client gives every call its client span, trace context, deadline and latency
//! metric; this module only encodes and decodes messages known by their descriptors.

use std::time::Duration;

use bytes::Buf;
use platform_client::Client;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;

/// Why an upstream URL cannot be used.
pub use platform_client::ClientError as UpstreamError;

/// One upstream service: its shared client.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client,
}

impl Upstream {
    /// An upstream reached through `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The URL this upstream was configured with.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// The shared client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls the unary method at `path` (`/pkg.Service/Method`) with `message` within
    /// `timeout`, decoding the answer as `output`.
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
        let mut grpc = tonic::client::Grpc::new(self.client.clone());
        let mut request = tonic::Request::from_parts(metadata, tonic::Extensions::new(), message);
        request.set_timeout(timeout);
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
        let response = grpc.unary(request, path, DynamicCodec { output }).await?;
        let (metadata, message, _) = response.into_parts();
        Ok((message, metadata))
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
