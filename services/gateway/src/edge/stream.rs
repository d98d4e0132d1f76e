//! Server-streaming methods over HTTP: newline-delimited JSON (`application/x-ndjson`,
//! the default) or Server-Sent Events when the client accepts `text/event-stream`.
//!
//! Each message is written as it arrives. A stream that fails after it began ends with
//! an error record carrying the `google.rpc.Status` (NDJSON `{"error": {...}}`, SSE
//! `event: error`), never with a silent cut. A client that goes away drops the body,
//! which drops the upstream stream and so cancels the call.

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
use tonic::Streaming;

use crate::errors::upstream_status;
use crate::routing::Route;
use crate::transcode::render_response;

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
    stream: Streaming<DynamicMessage>,
    heartbeat: Duration,
) -> Response {
    let records = records(route, pool, stream);
    let accepts_sse = request
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(EVENT_STREAM));
    let mut response = if accepts_sse {
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
    // Proxies in front (nginx's ingress, say) must not hold records back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The upstream's messages as records, ending after the first error.
fn records(
    route: Arc<Route>,
    pool: DescriptorPool,
    stream: Streaming<DynamicMessage>,
) -> impl Stream<Item = Record> + Send + 'static {
    futures_util::stream::unfold(Some(stream), move |state| {
        let (route, pool) = (Arc::clone(&route), pool.clone());
        async move {
            let mut stream = state?;
            match stream.message().await {
                Ok(Some(message)) => match render_response(&route, &message) {
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
