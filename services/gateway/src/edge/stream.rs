//! Server-streaming methods over HTTP: newline-delimited JSON (`application/x-ndjson`,
//! the default) or Server-Sent Events when the client accepts `text/event-stream`.
//!
//! Each message is written as it arrives. A stream that fails after it began ends with
//! an error record carrying the `google.rpc.Status` (NDJSON `{"error": {...}}`, SSE
//! `event: error`), never with a silent cut. A client that goes away drops the body,
//! which drops the upstream stream and so cancels the call.
//!
//! A stream of `google.api.HttpBody` is a download instead ([`download`]): each
//! message's bytes as they arrive, under the first message's content type. Raw bytes
//! have no room for an error record, so a failure after the start cuts the response
//! off (the body ends without its last chunk, which HTTP clients report).
//!
//! When the gateway drains, an NDJSON or SSE stream ends with an UNAVAILABLE error
//! record (the client calls again, elsewhere; a watch resumes from its last event), so
//! streams that would never end do not hold the drain for its whole grace period. A
//! download is left to finish within the grace period: a raw body cut short would
//! look complete to some clients.
//!
//! Every streamed response carries the [`Streamed`] extension, which keeps the
//! compression layer away from it: a compressor holds bytes back until it has enough.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use crate::errors::{upstream_error, upstream_status};
use crate::routing::Route;
use crate::transcode::{JsonOptions, httpbody, render_response_with};

const NDJSON: &str = "application/x-ndjson";
const EVENT_STREAM: &str = "text/event-stream";

/// One record of the response: a message's JSON, or the status the stream ended with.
#[derive(Debug)]
enum Record {
    Message(Vec<u8>),
    Error(Value),
}

/// The response streaming the upstream's messages in the format the client accepts.
pub(super) fn respond(
    request: &HeaderMap,
    route: Arc<Route>,
    pool: DescriptorPool,
    json: JsonOptions,
    stream: Streaming<DynamicMessage>,
    heartbeat: Duration,
    draining: CancellationToken,
) -> Response {
    let records = records(route, pool, json, stream, draining);
    let accepts_sse = request
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EVENT_STREAM));
    let response = if accepts_sse {
        let events = records.map(|record| {
            Ok::<_, Infallible>(match record {
                Record::Message(json) => Event::default().data(String::from_utf8_lossy(&json)),
                Record::Error(status) => Event::default().event("error").data(status.to_string()),
            })
        });
        Sse::new(events)
            .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
            .into_response()
    } else {
        let lines = records.map(|record| {
            let mut line = match record {
                Record::Message(json) => json,
                Record::Error(status) => json!({ "error": status }).to_string().into_bytes(),
            };
            line.push(b'\n');
            Ok::<_, Infallible>(Bytes::from(line))
        });
        let mut response = (StatusCode::OK, Body::from_stream(lines)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        response
    };
    streamed(response)
}

/// Marks a response as a stream: proxies in front (nginx's ingress, say) and the
/// compression layer must not hold its chunks back.
fn streamed(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.extensions_mut().insert(Streamed);
    response
}

/// Extension of a response whose body is written as the upstream sends it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Streamed;

/// A stream of `HttpBody` messages as one download: the first message decides the
/// content type (an error before it is an ordinary error answer), then each
/// message's data is written as it arrives.
pub(super) async fn download(
    mut stream: Streaming<DynamicMessage>,
    pool: &DescriptorPool,
) -> Response {
    let first = match stream.message().await {
        Ok(first) => first,
        Err(status) => return upstream_error(&status, pool),
    };
    let Some(first) = first else {
        let mut response = (StatusCode::OK, Bytes::new()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(httpbody::OCTET_STREAM),
        );
        return response;
    };
    let (content_type, data) = httpbody::parts(&first);
    let rest = futures_util::stream::unfold(Some(stream), |state| async move {
        let mut stream = state?;
        match stream.message().await {
            Ok(Some(message)) => Some((Ok(httpbody::parts(&message).1), Some(stream))),
            Ok(None) => None,
            Err(status) => {
                tracing::warn!(grpc.code = ?status.code(), error = status.message(), "download failed after it began");
                Some((Err(DownloadCut(status.code())), None))
            }
        }
    });
    let chunks = futures_util::stream::once(async move { Ok(data) }).chain(rest);
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    streamed(response)
}

/// Why a download ended early: the upstream's status code.
#[derive(Debug, thiserror::Error)]
#[error("the upstream stream failed with {0:?}")]
struct DownloadCut(tonic::Code);

/// The upstream's messages as records, ending after the first error.
fn records(
    route: Arc<Route>,
    pool: DescriptorPool,
    json: JsonOptions,
    stream: Streaming<DynamicMessage>,
    draining: CancellationToken,
) -> impl Stream<Item = Record> + Send + 'static {
    futures_util::stream::unfold(Some(stream), move |state| {
        let (route, pool, draining) = (Arc::clone(&route), pool.clone(), draining.clone());
        async move {
            let mut stream = state?;
            let next = tokio::select! {
                biased;
                () = draining.cancelled() => {
                    let status = json!({
                        "code": tonic::Code::Unavailable as i32,
                        "message": "the gateway is shutting down, call again",
                        "details": [],
                    });
                    return Some((Record::Error(status), None));
                }
                next = stream.message() => next,
            };
            match next {
                Ok(Some(message)) => match render_response_with(&route, &message, &json) {
                    Ok(json) => Some((Record::Message(json), Some(stream))),
                    Err(error) => {
                        tracing::error!(%error, "cannot render a streamed message");
                        let status = tonic::Status::internal(error.to_string());
                        Some((Record::Error(upstream_status(&status, &pool)), None))
                    }
                },
                Ok(None) => None,
                Err(status) => Some((Record::Error(upstream_status(&status, &pool)), None)),
            }
        }
    })
}
