//! The consumer: acked after the handler succeeds, retried when it fails, parked
//! after the last attempt (or at once when the event is malformed).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use platform_events::consumer::Subscription;
use platform_events::streams::{USER_DELETED, USERS};
use platform_events::{Consumer, Delivery, EventsSettings, HandleError, Handler};
use platform_testing::nats::NatsServer;

/// Fails (or rejects) every event with `payload` "bad"/"poison"; records the rest.
#[derive(Debug, Default)]
struct Recorder {
    applied: Mutex<Vec<(String, u32)>>,
    parked: Mutex<Vec<(String, u32, String)>>,
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8_lossy(&delivery.payload).into_owned()
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn apply(&self, delivery: &Delivery) -> Result<(), HandleError> {
        self.applied
            .lock()
            .unwrap()
            .push((text(delivery), delivery.attempt));
        match text(delivery).as_str() {
            "bad" => Err(HandleError::Failed("the database is away".into())),
            "poison" => Err(HandleError::Malformed("does not decode".to_owned())),
            _ => Ok(()),
        }
    }

    async fn park(&self, delivery: &Delivery, reason: &HandleError) -> Result<(), HandleError> {
        self.parked
            .lock()
            .unwrap()
            .push((text(delivery), delivery.attempt, reason.to_string()));
        Ok(())
    }
}

/// A broker of its own with the users stream in place: the server, a client and
/// JetStream over it.
async fn broker_with_users_stream() -> (NatsServer, async_nats::Client, jetstream::Context) {
    let nats = NatsServer::start().await;
    let client = platform_events::connect(&nats.url()).await.unwrap();
    let js = jetstream::new(client.clone());
    USERS.ensure(&js).await.unwrap();
    (nats, client, js)
}

const SUBSCRIPTION: Subscription = Subscription {
    stream: USERS,
    durable: "test-consumer",
    subject: USER_DELETED,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applies_good_events_retries_failures_and_parks_poison() {
    let (nats, client, js) = broker_with_users_stream().await;
    let recorder = Arc::new(Recorder::default());
    let settings = EventsSettings {
        nats_url: nats.url(),
        max_attempts: 3,
        max_backoff_ms: 100,
        ..EventsSettings::default()
    };
    let consumer = Consumer::start(client, SUBSCRIPTION, recorder.clone(), &settings);
    for payload in ["one", "bad", "poison", "two"] {
        js.publish(USER_DELETED, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    platform_testing::wait::until(
        "both bad events parked",
        Duration::from_secs(20),
        async || recorder.parked.lock().unwrap().len() == 2,
    )
    .await;
    // Nothing comes back once parked or acked.
    tokio::time::sleep(Duration::from_millis(700)).await;
    consumer.stop().await;

    let applied = recorder.applied.lock().unwrap().clone();
    let attempts = |name: &str| applied.iter().filter(|(p, _)| p == name).count();
    assert_eq!(attempts("one"), 1);
    assert_eq!(attempts("two"), 1);
    assert_eq!(
        attempts("bad"),
        3,
        "retried up to max_attempts: {applied:?}"
    );
    assert_eq!(attempts("poison"), 1, "a malformed event is not retried");
    let mut parked = recorder.parked.lock().unwrap().clone();
    parked.sort();
    assert_eq!(parked[0].0, "bad");
    assert_eq!(parked[0].1, 3);
    assert!(parked[0].2.contains("the database is away"), "{parked:?}");
    assert_eq!((parked[1].0.as_str(), parked[1].1), ("poison", 1));
}

/// A second consumer start under the same durable name continues where the first
/// stopped: what was acked is not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_after_the_last_ack() {
    let (nats, client, js) = broker_with_users_stream().await;
    let settings = EventsSettings {
        nats_url: nats.url(),
        ..EventsSettings::default()
    };
    let first = Arc::new(Recorder::default());
    let consumer = Consumer::start(client.clone(), SUBSCRIPTION, first.clone(), &settings);
    js.publish(USER_DELETED, "one".into())
        .await
        .unwrap()
        .await
        .unwrap();
    platform_testing::wait::until("first event applied", Duration::from_secs(20), async || {
        first.applied.lock().unwrap().len() == 1
    })
    .await;
    consumer.stop().await;
    js.publish(USER_DELETED, "two".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let second = Arc::new(Recorder::default());
    let consumer = Consumer::start(client, SUBSCRIPTION, second.clone(), &settings);
    platform_testing::wait::until(
        "second event applied",
        Duration::from_secs(20),
        async || !second.applied.lock().unwrap().is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    consumer.stop().await;
    let applied: Vec<String> = second
        .applied
        .lock()
        .unwrap()
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(applied, ["two"]);
}
