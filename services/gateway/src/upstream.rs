//! The gRPC services behind the gateway: unary and server-streaming calls with dynamic
//! messages over the shared, balanced [`platform_client::Client`] of each upstream.
//!
//! The client gives every call its client span, trace context, deadline and latency
//! metric; this module only encodes and decodes messages known by their descriptors,
//! compressed with gzip when the upstream is configured so. Each upstream also
//! carries its [`Policy`]: the edge's header rules and JSON options for its methods.

use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use platform_client::{Client, SafeToRepeat};
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::{Status, Streaming};

use crate::forward::HeaderRules;
use crate::settings::{GrpcCompression, UnknownQueryParameters, UpstreamOptions};
use crate::transcode::JsonOptions;

/// Why an upstream URL cannot be used.
pub use platform_client::ClientError as UpstreamError;

/// One upstream service: its shared client, for unary calls and for streams.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client,
    streams: Client,
    policy: Arc<Policy>,
}

/// How the edge treats the calls to one upstream, from its settings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Message compression, both ways.
    pub compression: Option<CompressionEncoding>,
    /// Headers forwarded to it and metadata returned from it.
    pub headers: HeaderRules,
    /// JSON writing and query reading of its methods.
    pub json: JsonOptions,
}

impl Policy {
    /// The policy `options` describe.
    pub fn new(options: &UpstreamOptions) -> Self {
        Self {
            compression: match options.compression {
                GrpcCompression::None => None,
                GrpcCompression::Gzip => Some(CompressionEncoding::Gzip),
            },
            headers: HeaderRules::new(options),
            json: JsonOptions {
                emit_unpopulated: options.json.emit_unpopulated,
                proto_field_names: options.json.proto_field_names,
                enums_as_numbers: options.json.enums_as_numbers,
                ignore_unknown_query_parameters: options.json.unknown_query_parameters
                    == UnknownQueryParameters::Ignore,
            },
        }
    }
}

/// A unary call's answer: the response metadata, the message and the trailers, apart
/// so that each goes back to the client under its own prefix.
#[derive(Debug)]
pub struct Reply {
    /// Response metadata (the headers of the gRPC response).
    pub headers: MetadataMap,
    /// The message.
    pub message: DynamicMessage,
    /// Trailing metadata (`grpc-status` included, which no allow-list may name).
    pub trailers: MetadataMap,
}

/// One call to a method of an upstream.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The method, `/pkg.Service/Method`.
    pub path: &'a str,
    /// The request message.
    pub message: DynamicMessage,
    /// The type of the response messages.
    pub output: MessageDescriptor,
    /// The request metadata.
    pub metadata: MetadataMap,
    /// The call's deadline, sent as `grpc-timeout`.
    pub timeout: Duration,
    /// Whether the call may be sent twice: a read, or a create carrying an idempotency
    /// key.
    pub safe_to_repeat: bool,
}

impl Upstream {
    /// An upstream reached through `client`; streams through `streams`, the same
    /// channel with its own (longer) bound on a call's duration. The default policy:
    /// no compression, no headers either way, canonical JSON.
    pub fn new(client: Client, streams: Client) -> Self {
        Self {
            client,
            streams,
            policy: Arc::new(Policy::default()),
        }
    }

    /// The same upstream, treated per `policy`.
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// How the edge treats calls to it.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The URL this upstream was configured with.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// The shared client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Makes the unary `call`, decoding the answer as its `output`. A call
    /// `safe_to_repeat` (a read, or a create carrying an idempotency key) is retried on
    /// UNAVAILABLE; any call is retried when it never reached the service.
    pub async fn unary(&self, call: Call<'_>) -> Result<Reply, Status> {
        if !call.safe_to_repeat {
            return self.unary_once(call).await;
        }
        let started = std::time::Instant::now();
        let first = self.unary_once(call.clone()).await;
        // The client's retries end once an answer has begun; a replica that dies while
        // answering breaks the call mid-answer. A call safe to repeat is sent once more,
        // within what is left of its deadline.
        let left = call.timeout.saturating_sub(started.elapsed());
        let may_repeat = left > MIN_RETRY;
        match first {
            Err(status) if may_repeat && broken_mid_answer(&status) => {
                tracing::info!(error = %status, "answer cut off; sending the call once more");
                self.unary_once(Call {
                    timeout: left,
                    ..call
                })
                .await
            }
            other => other,
        }
    }

    async fn unary_once(&self, call: Call<'_>) -> Result<Reply, Status> {
        // On the wire a unary call is a stream of one message each way; read as one,
        // its trailers stay apart from its headers (tonic's `unary` merges them).
        let (headers, mut stream) = open(&self.client, self.policy.compression, call).await?;
        let message = stream
            .message()
            .await?
            .ok_or_else(|| Status::internal("the upstream sent no response message"))?;
        let trailers = stream.trailers().await?.unwrap_or_default();
        Ok(Reply {
            headers,
            message,
            trailers,
        })
    }

    /// Makes the server-streaming `call`, for at most its `timeout`: the response
    /// metadata, then the messages as they come.
    pub async fn server_streaming(
        &self,
        call: Call<'_>,
    ) -> Result<(MetadataMap, Streaming<DynamicMessage>), Status> {
        open(&self.streams, self.policy.compression, call).await
    }
}

/// Sends `call` on `client` and waits for the response metadata; the messages follow
/// on the stream.
async fn open(
    client: &Client,
    compression: Option<CompressionEncoding>,
    call: Call<'_>,
) -> Result<(MetadataMap, Streaming<DynamicMessage>), Status> {
    let path = call
        .path
        .parse::<http::uri::PathAndQuery>()
        .map_err(|_| Status::internal("invalid method path"))?;
    let mut grpc = tonic::client::Grpc::new(client.clone());
    if let Some(encoding) = compression {
        grpc = grpc.send_compressed(encoding).accept_compressed(encoding);
    }
    let mut extensions = tonic::Extensions::new();
    if call.safe_to_repeat {
        extensions.insert(SafeToRepeat);
    }
    // The deadline as `grpc-timeout`, written as the client layer writes it (tonic's
    // `set_timeout` formats it through `fmt`).
    let mut metadata = call.metadata.into_headers();
    if let Some(value) = platform_client::encode_timeout(call.timeout) {
        metadata.insert("grpc-timeout", value);
    }
    let metadata = MetadataMap::from_headers(metadata);
    let request = tonic::Request::from_parts(metadata, extensions, call.message);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("upstream not ready: {e}")))?;
    let codec = DynamicCodec {
        output: call.output,
    };
    let response = grpc.server_streaming(request, path, codec).await?;
    let (metadata, stream, _) = response.into_parts();
    Ok((metadata, stream))
}

/// Below this much time left, a call is not sent again.
const MIN_RETRY: Duration = Duration::from_millis(20);

/// Whether `status` is a broken transport rather than an answer: the connection went
/// away while the answer was being read (a status the service sent has no source).
fn broken_mid_answer(status: &Status) -> bool {
    use std::error::Error as _;
    matches!(
        status.code(),
        tonic::Code::Unknown | tonic::Code::Unavailable
    ) && status.source().is_some()
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
