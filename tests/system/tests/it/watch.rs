//! Watching orders through the gateway (`GET /v1/orders:watch`): NDJSON and Server-Sent
//! Events show an order as it is placed, a watch resumes after an event id, and with
//! a real broker, deleting an account in users shows its orders cancelled to a
//! watcher of the real binaries.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use system_tests::System;
use system_tests::edge::{Edge, expect_json, page, two_books};
use system_tests::processes::{Config, Export, Processes};

/// Long enough for a change to cross the system on a loaded machine.
const WITHIN: Duration = Duration::from_secs(20);

/// The lines of a streamed body as they arrive.
struct Lines {
    response: reqwest::Response,
    buffer: String,
}

impl Lines {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next complete line, failing the test when none comes in time or the body ends.
    async fn next(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find('\n') {
                let line = self.buffer[..end].to_owned();
                self.buffer.drain(..=end);
                return line;
            }
            let chunk = tokio::time::timeout(WITHIN, self.response.chunk())
                .await
                .expect("a line arrives in time")
                .expect("the body streams")
                .unwrap_or_else(|| panic!("the stream ended; unfinished: {:?}", self.buffer));
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next NDJSON record.
    async fn record(&mut self) -> Value {
        let line = self.next().await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
    }

    /// The next `count` NDJSON records.
    async fn records(&mut self, count: usize) -> Vec<Value> {
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            records.push(self.record().await);
        }
        records
    }

    /// The data of the next Server-Sent Event, heartbeats skipped.
    async fn event(&mut self) -> Value {
        loop {
            let line = self.next().await;
            if let Some(data) = line.strip_prefix("data: ") {
                return serde_json::from_str(data).expect("the event's data is JSON");
            }
        }
    }
}

/// `GET path` (a watch) as NDJSON, or as Server-Sent Events when `sse`.
async fn watch(edge: &Edge, path: &str, token: &str, sse: bool) -> Lines {
    let kind = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    let accept: &[(&str, &str)] = if sse { &[("Accept", kind)] } else { &[] };
    let response = edge.get_with(path, token, accept).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], kind);
    Lines::new(response)
}

/// A JSON string's text.
fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
}

/// Places an order and returns its id.
async fn place(edge: &Edge, token: &str) -> String {
    let response = edge.post("/v1/orders", token, &two_books()).await;
    let order = expect_json(response, StatusCode::OK).await;
    order["id"].as_str().expect("an id").to_owned()
}

/// Without a broker (the embedded default): NDJSON and SSE watchers see an order as
/// it is placed, and a watch resumed after the first change gets the second.
#[tokio::test]
async fn a_watch_over_http_shows_orders_as_they_are_placed() {
    let system = System::start().await;
    let (ada, token) = system.user("ada@example.com").await;
    let url = "/v1/orders:watch";
    let mut ndjson = watch(&system, url, &token, false).await;
    let mut sse = watch(&system, url, &token, true).await;

    let first = place(&system, &token).await;
    let change = ndjson.record().await;
    assert_eq!(change["kind"], "ORDER_CHANGE_KIND_CREATED", "{change}");
    assert_eq!(change["order"]["id"], first.as_str());
    assert_eq!(change["order"]["userId"], ada.as_str());
    assert_eq!(change["order"]["totalCents"], "2500");
    assert_eq!(change["order"]["status"], "ORDER_STATUS_PENDING");
    assert!(change["occurTime"].is_string(), "{change}");
    let event = sse.event().await;
    assert_eq!(event, change, "the same change either way");

    let second = place(&system, &token).await;
    let resume = format!("{url}?afterEventId={}", change["eventId"].as_str().unwrap());
    let mut resumed = watch(&system, &resume, &token, false).await;
    assert_eq!(resumed.record().await["order"]["id"], second.as_str());

    // The orders service counts its watchers.
    let orders_admin = system.orders.as_ref().unwrap().admin.unwrap();
    let metrics = page(&system.http, &format!("http://{orders_admin}/metrics")).await;
    let watchers: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("orders_active_watchers "))
        .unwrap_or_else(|| panic!("orders_active_watchers in {metrics}"))
        .parse()
        .unwrap();
    assert!(watchers >= 3.0, "three watches open: {watchers}");

    // An id that names nothing is a plain 400 before the stream starts.
    let unknown = system
        .get(
            &format!("/v1/orders:watch?afterEventId={}", uuid::Uuid::now_v7()),
            &token,
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    let error: Value = unknown.json().await.unwrap();
    assert_eq!(error["code"], 3, "{error}");

    // The gateway shutting down ends its streams with a record saying so, at once,
    // rather than holding its drain for the grace period.
    let mut system = system;
    let stopping = std::time::Instant::now();
    system.gateway.take().expect("running").stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        stopping.elapsed()
    );
    assert_eq!(ndjson.record().await["order"]["id"], second.as_str());
    assert_eq!(ndjson.record().await["error"]["code"], 14);
    assert_eq!(sse.event().await["order"]["id"], second.as_str());
    assert_eq!(sse.event().await["code"], 14);
    system.stop().await;
}

/// The real binaries with a real broker: Ada watches through the gateway, deletes her
/// account through the gateway, and sees her pending orders cancelled because the
/// account was deleted; her cancelled order is not cancelled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_shows_its_orders_cancelled_to_a_watcher() {
    let nats = platform_testing::nats::NatsServer::start().await;
    let mut config = Config::new(Export::Off);
    config.nats_url = Some(nats.url());
    let system = Processes::start(config).await;
    let (ada, token) = system.user("ada@example.com").await;
    let mut watcher = watch(&system, "/v1/orders:watch", &token, false).await;

    let kept = place(&system, &token).await;
    let other = place(&system, &token).await;
    let done = place(&system, &token).await;
    let cancel = format!("/v1/orders/{done}:cancel");
    let cancelled = system.send(Method::POST, &cancel, &token).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let before = watcher.records(4).await;
    let before: Vec<(&str, &str)> = before
        .iter()
        .map(|change| (text(&change["kind"]), text(&change["order"]["id"])))
        .collect();
    let created = "ORDER_CHANGE_KIND_CREATED";
    assert_eq!(
        before,
        [
            (created, kept.as_str()),
            (created, other.as_str()),
            (created, done.as_str()),
            ("ORDER_CHANGE_KIND_CANCELLED", done.as_str()),
        ]
    );

    let account = format!("/v1/users/{ada}");
    let deleted = system.send(Method::DELETE, &account, &token).await;
    assert_eq!(deleted.status(), StatusCode::OK);

    let after = watcher.records(2).await;
    for change in &after {
        assert_eq!(change["kind"], "ORDER_CHANGE_KIND_CANCELLED", "{change}");
        assert_eq!(change["reason"], "account deleted");
        assert_eq!(change["order"]["status"], "ORDER_STATUS_CANCELLED");
    }
    let mut seen: Vec<&str> = after.iter().map(|c| text(&c["order"]["id"])).collect();
    seen.sort_unstable();
    let mut expected = [kept.as_str(), other.as_str()];
    expected.sort_unstable();
    assert_eq!(seen, expected, "the pending orders, once each");
    drop(watcher);
    system.stop().await;
}
