//! The gRPC services behind the gateway: unary and server-streaming calls with dynamic
//! messages over the shared, balanced [`platform_client::Client`] of each upstream.
//!
//! The client gives every call its client span, trace context, deadline and latency
//! metric; this module only encodes and decodes messages known by their descriptors.

use std::time::Duration;

use bytes::Buf;
use platform_client::{Client, SafeToRepeat};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

/// Why an upstream URL cannot be used.
pub use platform_client::ClientError as UpstreamError;

/// One upstream service: its shared client, for unary calls and for streams.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client,
    streams: Client,
}

impl Upstream {
    /// An upstream reached through `client`; streams through `streams`, the same
    /// channel with its own (longer) bound on a call's duration.
    pub fn new(client: Client, streams: Client) -> Self {
        Self { client, streams }
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
    /// `timeout`, decoding the answer as `output`. A call `safe_to_repeat` (a read, or
    /// a create carrying an idempotency key) is retried on UNAVAILABLE; any call is
    /// retried when it never reached the service.
    pub async fn unary(
        &self,
        path: &str,
        message: DynamicMessage,
        output: MessageDescriptor,
        metadata: MetadataMap,
        timeout: Duration,
        safe_to_repeat: bool,
    ) -> Result<(DynamicMessage, MetadataMap), Status> {
        let call = Call {
            metadata,
            timeout,
            safe_to_repeat,
        };
        let (mut grpc, request, path) = prepare(&self.client, path, message, call).await?;
        let response = grpc.unary(request, path, DynamicCodec { output }).await?;
        let (metadata, message, _) = response.into_parts();
        Ok((message, metadata))
    }

    /// Calls the server-streaming method at `path` with `message`, for at most
    /// `timeout`: the response metadata, then the messages as they come. Retried as
    /// [`Upstream::unary`] until the stream has started.
    pub async fn server_streaming(
        &self,
        path: &str,
        message: DynamicMessage,
        output: MessageDescriptor,
        metadata: MetadataMap,
        timeout: Duration,
        safe_to_repeat: bool,
    ) -> Result<(MetadataMap, Streaming<DynamicMessage>), Status> {
        let call = Call {
            metadata,
            timeout,
            safe_to_repeat,
        };
        let (mut grpc, request, path) = prepare(&self.streams, path, message, call).await?;
        let response = grpc
            .server_streaming(request, path, DynamicCodec { output })
            .await?;
        let (metadata, stream, _) = response.into_parts();
        Ok((metadata, stream))
    }
}

/// What a call carries besides its message.
struct Call {
    metadata: MetadataMap,
    timeout: Duration,
    safe_to_repeat: bool,
}

/// A ready client, the request and its parsed path.
async fn prepare(
    client: &Client,
    path: &str,
    message: DynamicMessage,
    call: Call,
) -> Result<
    (
        tonic::client::Grpc<Client>,
        tonic::Request<DynamicMessage>,
        http::uri::PathAndQuery,
    ),
    Status,
> {
    let path = path
        .parse::<http::uri::PathAndQuery>()
        .map_err(|_| Status::internal("invalid method path"))?;
    let mut grpc = tonic::client::Grpc::new(client.clone());
    let mut extensions = tonic::Extensions::new();
    if call.safe_to_repeat {
        extensions.insert(SafeToRepeat);
    }
    let mut request = tonic::Request::from_parts(call.metadata, extensions, message);
    request.set_timeout(call.timeout);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
    Ok((grpc, request, path))
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
