//! The relay: in order, once, and patient with a broker that is away.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use platform_db::{Database, DatabaseSettings, now};
use platform_events::streams::{ORDER_CREATED, ORDERS};
use platform_events::{EventsSettings, OutboxEvent, Relay, enqueue, new_event_id};
use platform_testing::TestDatabase;
use platform_testing::nats::NatsServer;

/// The outbox as the services create it (their migration, with the consumer tables).
async fn open(db: &TestDatabase) -> Database {
    let database = Database::connect_lazy(&DatabaseSettings::new(db.url())).unwrap();
    let applied = match &database {
        Database::Postgres(pool) => sqlx::raw_sql(include_str!(
            "../../../../services/orders/migrations/postgres/0002_events.sql"
        ))
        .execute(pool)
        .await
        .map(drop),
        Database::Sqlite(pool) => sqlx::raw_sql(include_str!(
            "../../../../services/orders/migrations/sqlite/0002_events.sql"
        ))
        .execute(pool)
        .await
        .map(drop),
    };
    applied.unwrap();
    database
}

/// Writes events `0..n` (the payload is the number), each in its own transaction.
async fn write_events(database: &Database, range: std::ops::Range<u32>) {
    for i in range {
        let event = OutboxEvent::new(
            new_event_id(),
            ORDER_CREATED,
            "orders.v1.OrderCreated",
            i.to_be_bytes().to_vec(),
            now(),
        );
        match database {
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await.unwrap();
                enqueue::<sqlx::Postgres>(&mut tx, &event).await.unwrap();
                tx.commit().await.unwrap();
            }
            Database::Sqlite(pool) => {
                let mut tx = pool.begin().await.unwrap();
                enqueue::<sqlx::Sqlite>(&mut tx, &event).await.unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

async fn pending(database: &Database) -> i64 {
    let sql = "SELECT count(*) FROM outbox WHERE sent_time IS NULL";
    match database {
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

fn settings(nats: &NatsServer) -> EventsSettings {
    EventsSettings {
        nats_url: nats.url(),
        poll_interval_ms: 20,
        batch_size: 7,
        max_backoff_ms: 200,
        publish_timeout_ms: 1_000,
        ..EventsSettings::default()
    }
}

/// Every message published on `orders.v1.>`, as the broker received it (duplicates
/// included: a core subscription sees each publish, JetStream's dedup or not).
async fn wire(client: &async_nats::Client) -> async_nats::Subscriber {
    let subscriber = client.subscribe("orders.v1.>").await.unwrap();
    client.flush().await.unwrap();
    subscriber
}

/// The payloads of the next `n` messages, and their distinct message ids.
async fn receive(subscriber: &mut async_nats::Subscriber, n: usize) -> (Vec<u32>, HashSet<String>) {
    let mut payloads = Vec::new();
    let mut ids = HashSet::new();
    while payloads.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(20), subscriber.next())
            .await
            .expect("events arrive")
            .expect("subscription open");
        payloads.push(u32::from_be_bytes(message.payload[..4].try_into().unwrap()));
        let headers = message.headers.expect("headers");
        ids.insert(headers.get("Nats-Msg-Id").expect("message id").to_string());
        assert_eq!(
            headers
                .get("Event-Type")
                .map(ToString::to_string)
                .as_deref(),
            Some("orders.v1.OrderCreated")
        );
    }
    (payloads, ids)
}

/// Nothing more arrives within a short while.
async fn quiet(subscriber: &mut async_nats::Subscriber) {
    let more = tokio::time::timeout(Duration::from_millis(500), subscriber.next()).await;
    assert!(more.is_err(), "an event was published twice: {more:?}");
}

async fn wait_sent(database: &Database) {
    platform_testing::wait::until("every event sent", Duration::from_secs(20), async || {
        pending(database).await == 0
    })
    .await;
}

async fn publishes_every_event_once_in_order_and_marks_it_sent(db: TestDatabase) {
    let nats = NatsServer::start().await;
    let database = open(&db).await;
    write_events(&database, 0..30).await;
    let client = platform_events::connect(&nats.url()).await.unwrap();
    let mut subscriber = wire(&client).await;
    let relay = Relay::start(database.clone(), client.clone(), ORDERS, &settings(&nats));
    let (payloads, ids) = receive(&mut subscriber, 30).await;
    assert_eq!(payloads, (0..30).collect::<Vec<_>>());
    assert_eq!(ids.len(), 30);
    wait_sent(&database).await;
    // Written while the relay runs: picked up on its next round.
    write_events(&database, 30..33).await;
    let (payloads, _) = receive(&mut subscriber, 3).await;
    assert_eq!(payloads, [30, 31, 32]);
    quiet(&mut subscriber).await;
    relay.stop().await;
    let js = jetstream::new(client);
    let mut stream = js.get_stream(ORDERS.name).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 33);
}

async fn waits_for_a_broker_that_is_away_then_sends_the_backlog(db: TestDatabase) {
    let mut nats = NatsServer::start().await;
    nats.stop().await;
    let database = open(&db).await;
    let client = platform_events::connect(&nats.url()).await.unwrap();
    let relay = Relay::start(database.clone(), client, ORDERS, &settings(&nats));
    write_events(&database, 0..5).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        pending(&database).await,
        5,
        "nothing is sent without a broker"
    );
    nats.resume().await;
    wait_sent(&database).await;
    relay.stop().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream(ORDERS.name)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 5);
}

platform_testing::database_suite!(
    publishes_every_event_once_in_order_and_marks_it_sent,
    waits_for_a_broker_that_is_away_then_sends_the_backlog,
);

/// Two relays on one PostgreSQL outbox (two replicas): every event leaves once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_postgres_publish_each_event_once_in_order() {
    let db = TestDatabase::postgres().await;
    let nats = NatsServer::start().await;
    let database = open(&db).await;
    write_events(&database, 0..60).await;
    let client = platform_events::connect(&nats.url()).await.unwrap();
    let mut subscriber = wire(&client).await;
    let settings = settings(&nats);
    let first = Relay::start(database.clone(), client.clone(), ORDERS, &settings);
    let second = Relay::start(database.clone(), client.clone(), ORDERS, &settings);
    write_events(&database, 60..80).await;
    let (payloads, ids) = receive(&mut subscriber, 80).await;
    assert_eq!(payloads, (0..80).collect::<Vec<_>>());
    assert_eq!(ids.len(), 80);
    quiet(&mut subscriber).await;
    first.stop().await;
    second.stop().await;
}
