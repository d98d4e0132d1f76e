//! One user's journey through the gateway's HTTP API, step by step.
//!
//! A journey is what a new customer does: sign up, sign in, refresh the access token,
//! watch their orders (`GET /v1/orders:watch`, read in the background), place
//! `--orders` orders (each with its own `Idempotency-Key`, as a client that may retry
//! sends), list them, read one back and cancel it, and finally wait for each of those
//! changes to arrive on the watch. Each step needs the answer of the one before (the
//! token, an order id), so the steps of one journey run one after the other; journeys
//! themselves arrive on the open schedule of [`crate::run`].
//!
//! A watched change is timed from when the request that made it was sent to when its
//! line arrived on the watch; one that has not arrived `--timeout` after the last
//! step is counted missing (an error), and the journey as failed. A system that does
//! not serve the watch (404) has the step and its changes counted as skipped.
//!
//! Latency is measured from when a step was meant to start: the journey's arrival
//! time for its first step, the previous answer for the others. A journey that
//! starts late because the generator was busy is therefore charged for the wait.
//!
//! A step whose answer is not what it expects ends the journey: the next step would
//! have nothing to work with. The refresh step tolerates a system without refresh
//! tokens: when sign-in returns none, or `POST /v1/auth/refresh` answers 404, the
//! step is counted as skipped and the journey goes on with the sign-in token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stats::{Answer, Recorder, Route, Verdict};

/// The password of every account a run signs up: long and unlike the email and
/// display name, so the strength check accepts it. The accounts are throwaway.
const PASSWORD: &str = "amber kettle drifts north 58 times";

/// What every journey of a run shares.
#[derive(Debug)]
pub(crate) struct Journeys {
    pub(crate) http: reqwest::Client,
    /// The gateway's base URL, without a trailing slash.
    pub(crate) base: String,
    pub(crate) recorder: Arc<Recorder>,
    /// Tells this run's accounts and idempotency keys apart from other runs'.
    pub(crate) run_id: String,
    /// Orders each journey places.
    pub(crate) orders: u32,
    /// Bound of one request, and of the wait for the watched changes.
    pub(crate) timeout: Duration,
}

/// The longest a journey's watch may stay open (it is closed when the journey ends).
const WATCH_LIMIT: Duration = Duration::from_secs(3600);

/// Kinds of change as the watch names them.
const CREATED: &str = "ORDER_CHANGE_KIND_CREATED";
const CANCELLED: &str = "ORDER_CHANGE_KIND_CANCELLED";

/// The step failed; it has been recorded.
#[derive(Debug)]
struct Failed;

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// One NDJSON record of the watch: a change, or the error that ended it.
#[derive(Deserialize)]
struct ChangeLine {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    order: Option<Created>,
}

/// A change seen on the watch: when, which order, what happened to it.
#[derive(Debug)]
struct Seen {
    at: Instant,
    order_id: String,
    kind: String,
}

/// A journey's watch, read by a task of its own; closed when dropped.
struct Watch {
    changes: mpsc::UnboundedReceiver<Seen>,
    reader: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tokens {
    access_token: String,
    /// Absent from systems without refresh tokens.
    #[serde(default)]
    refresh_token: Option<String>,
}

impl Journeys {
    /// Runs journey number `n`, meant to start at `intended`; whether it completed.
    pub(crate) async fn run(&self, n: u64, intended: Instant) -> bool {
        let mut journey = Journey {
            shared: self,
            since: intended,
        };
        journey.steps(n).await.is_ok()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// One journey in progress.
struct Journey<'a> {
    shared: &'a Journeys,
    /// When the next step is meant to start.
    since: Instant,
}

impl Journey<'_> {
    async fn steps(&mut self, n: u64) -> Result<(), Failed> {
        let http = &self.shared.http;
        let run_id = &self.shared.run_id;
        let email = format!("load-{run_id}-{n}@example.com");

        let sign_up = http.post(self.shared.url("/v1/users")).json(&json!({
            "email": email,
            "displayName": "Load Test",
            "password": PASSWORD,
        }));
        let _: Created = self.expect(Route::SignUp, sign_up).await?;

        let sign_in = http
            .post(self.shared.url("/v1/auth/token"))
            .json(&json!({ "email": email, "password": PASSWORD }));
        let signed_in: Tokens = self.expect(Route::SignIn, sign_in).await?;
        let token = self.refresh(signed_in).await?;
        let watch = self.watch(&token).await?;
        // The changes the watch should show: order, kind, when its request was sent.
        let mut changes = Vec::new();

        // `--orders` is at least 1: the first order is the one read back and cancelled.
        let sent = self.since;
        let first = self.create_order(&token, n, 0).await?;
        changes.push((first.clone(), CREATED, sent));
        for k in 1..self.shared.orders {
            let sent = self.since;
            let id = self.create_order(&token, n, k).await?;
            changes.push((id, CREATED, sent));
        }

        let list = http
            .get(self.shared.url("/v1/orders?page_size=10"))
            .bearer_auth(&token);
        let _: IgnoredAny = self.expect(Route::ListOrders, list).await?;

        let get = http
            .get(self.shared.url(&format!("/v1/orders/{first}")))
            .bearer_auth(&token);
        let _: IgnoredAny = self.expect(Route::GetOrder, get).await?;

        let sent = self.since;
        let cancel = http
            .post(self.shared.url(&format!("/v1/orders/{first}:cancel")))
            .bearer_auth(&token)
            .json(&json!({}));
        let _: IgnoredAny = self.expect(Route::CancelOrder, cancel).await?;
        changes.push((first, CANCELLED, sent));

        match watch {
            Some(watch) => self.watched(watch, changes).await,
            None => Ok(()),
        }
    }

    /// Opens the journey's watch; `None` when the system does not serve it (404).
    async fn watch(&mut self, token: &str) -> Result<Option<Watch>, Failed> {
        let request = self
            .shared
            .http
            .get(self.shared.url("/v1/orders:watch"))
            .bearer_auth(token)
            // The client's timeout bounds a whole answer; a watch's lasts the journey.
            .timeout(WATCH_LIMIT);
        let opened = request.send().await;
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.since);
        self.since = now;
        let recorder = &self.shared.recorder;
        let response = match opened {
            Ok(response) => response,
            Err(error) => {
                recorder.request(
                    Route::WatchOrders,
                    transport_failure(&error),
                    Verdict::Error,
                    latency,
                );
                return Err(Failed);
            }
        };
        let status = response.status().as_u16();
        if status == 404 {
            recorder.request(
                Route::WatchOrders,
                Answer::Status(status),
                Verdict::Skipped,
                latency,
            );
            recorder.skipped_unsent(Route::WatchedChange);
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            recorder.request(
                Route::WatchOrders,
                Answer::Status(status),
                Verdict::Error,
                latency,
            );
            return Err(Failed);
        }
        recorder.request(
            Route::WatchOrders,
            Answer::Status(status),
            Verdict::Ok,
            latency,
        );
        let (sender, changes) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_changes(response, sender));
        Ok(Some(Watch { changes, reader }))
    }

    /// Waits (at most `--timeout`) for each of `changes` to arrive on `watch`,
    /// recording each one's latency, and each one that never came as missing.
    async fn watched(
        &mut self,
        mut watch: Watch,
        changes: Vec<(String, &'static str, Instant)>,
    ) -> Result<(), Failed> {
        let recorder = &self.shared.recorder;
        let mut waiting: HashMap<(String, String), Instant> = changes
            .into_iter()
            .map(|(order, kind, sent)| ((order, kind.to_owned()), sent))
            .collect();
        let deadline = Instant::now() + self.shared.timeout;
        while !waiting.is_empty() {
            let seen = match tokio::time::timeout_at(deadline, watch.changes.recv()).await {
                Ok(Some(seen)) => seen,
                // The watch ended, or the changes are late.
                Ok(None) | Err(_) => break,
            };
            if let Some(sent) = waiting.remove(&(seen.order_id, seen.kind)) {
                let latency = seen.at.saturating_duration_since(sent);
                recorder.request(Route::WatchedChange, Answer::Watched, Verdict::Ok, latency);
            }
        }
        let now = Instant::now();
        let missing = !waiting.is_empty();
        for sent in waiting.into_values() {
            let latency = now.saturating_duration_since(sent);
            recorder.request(
                Route::WatchedChange,
                Answer::Missing,
                Verdict::Error,
                latency,
            );
        }
        if missing { Err(Failed) } else { Ok(()) }
    }

    /// Places order `k` of journey `n`; its id.
    async fn create_order(&mut self, token: &str, n: u64, k: u32) -> Result<String, Failed> {
        let run_id = &self.shared.run_id;
        let create = self
            .shared
            .http
            .post(self.shared.url("/v1/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("load-{run_id}-{n}-{k}"))
            .json(&json!({
                "items": [{ "sku": format!("LOAD-{k}"), "quantity": 1, "unitPriceCents": "1250" }],
            }));
        let order: Created = self.expect(Route::CreateOrder, create).await?;
        Ok(order.id)
    }

    /// Exchanges the sign-in's refresh token for a new access token, and returns the
    /// access token to go on with.
    async fn refresh(&mut self, signed_in: Tokens) -> Result<String, Failed> {
        let Some(refresh_token) = signed_in.refresh_token.filter(|t| !t.is_empty()) else {
            self.shared.recorder.skipped_unsent(Route::Refresh);
            return Ok(signed_in.access_token);
        };
        let request = self
            .shared
            .http
            .post(self.shared.url("/v1/auth/refresh"))
            .json(&json!({ "refreshToken": refresh_token }));
        let refreshed: Option<Tokens> = self.call(Route::Refresh, request, true).await?;
        Ok(refreshed.map_or(signed_in.access_token, |t| t.access_token))
    }

    /// Sends a step that must succeed with a `T` in its body.
    async fn expect<T: DeserializeOwned>(
        &mut self,
        route: Route,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Failed> {
        self.call(route, request, false).await?.ok_or(Failed)
    }

    /// Sends a step, records it, and parses a successful answer. `None`: the route
    /// answered 404 and `absent_is_skip` says that means "not served here".
    async fn call<T: DeserializeOwned>(
        &mut self,
        route: Route,
        request: reqwest::RequestBuilder,
        absent_is_skip: bool,
    ) -> Result<Option<T>, Failed> {
        let received = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                response.bytes().await.map(|body| (status, body))
            }
            Err(error) => Err(error),
        };
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.since);
        self.since = now;
        let record = |answer, verdict| {
            self.shared
                .recorder
                .request(route, answer, verdict, latency);
        };
        let (status, body) = match received {
            Ok(received) => received,
            Err(error) => {
                record(transport_failure(&error), Verdict::Error);
                return Err(Failed);
            }
        };
        if status == 404 && absent_is_skip {
            record(Answer::Status(status), Verdict::Skipped);
            return Ok(None);
        }
        if !(200..300).contains(&status) {
            record(Answer::Status(status), Verdict::Error);
            return Err(Failed);
        }
        match serde_json::from_slice(&body) {
            Ok(parsed) => {
                record(Answer::Status(status), Verdict::Ok);
                Ok(Some(parsed))
            }
            Err(_) => {
                record(Answer::BadBody, Verdict::Error);
                Err(Failed)
            }
        }
    }
}

/// Reads the watch's NDJSON records as they arrive and hands each change on, until
/// the stream ends (an error record ends it too) or the journey drops the watch.
async fn read_changes(mut response: reqwest::Response, changes: mpsc::UnboundedSender<Seen>) {
    let mut buffer = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let at = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(change) = serde_json::from_slice::<ChangeLine>(&line) else {
                continue;
            };
            if let Some(order) = change.order {
                let seen = Seen {
                    at,
                    order_id: order.id,
                    kind: change.kind,
                };
                if changes.send(seen).is_err() {
                    return;
                }
            }
        }
    }
}

fn transport_failure(error: &reqwest::Error) -> Answer {
    if error.is_timeout() {
        Answer::Timeout
    } else if error.is_connect() {
        Answer::Connect
    } else {
        Answer::Transport
    }
}

/// The HTTP client of a run: `timeout` bounds each request, answer included.
pub(crate) fn client(timeout: Duration, max_in_flight: usize) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // Every journey in flight may hold a connection; keep them for the next ones.
        .pool_max_idle_per_host(max_in_flight)
        .build()
}
