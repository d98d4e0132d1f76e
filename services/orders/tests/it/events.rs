//! Events: written with the change or not at all; account deletions applied once;
//! the whole path through a real NATS server, including an outage.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use orders::domain::{Items, OrderId, OrderStatus, RawItem, UserId};
use orders::events::reason;
use orders::reactions::CONSUMER;
use orders::store::{self, Applied, Cancelled, Created, MIGRATIONS, NewOrder, OrderStore};
use platform_db::{Database, DatabaseSettings};
use platform_events::streams::{ORDERS, USER_DELETED, USERS};
use platform_proto::orders::v1 as pb;
use platform_proto::users::v1 as users_pb;
use platform_testing::TestDatabase;
use platform_testing::nats::NatsServer;
use prost::Message;
use uuid::Uuid;

use crate::common::{Stack, order_request};

async fn open(db: &TestDatabase) -> (Database, Arc<dyn OrderStore>) {
    let database = Database::connect_lazy(&DatabaseSettings::new(db.url())).unwrap();
    database.migrate(MIGRATIONS).await.unwrap();
    let store = store::open(&database);
    (database, store)
}

fn new_order(user: UserId) -> NewOrder {
    let raw = [RawItem {
        sku: "BOOK-1",
        quantity: 2,
        unit_price_cents: 1250,
    }];
    NewOrder {
        id: OrderId::generate(),
        user_id: user,
        items: Items::parse(&raw).unwrap(),
        request_id: None,
    }
}

/// The outbox's events, oldest first: (event type, payload).
async fn outbox(database: &Database) -> Vec<(String, Vec<u8>)> {
    let sql = "SELECT event_type, payload FROM outbox ORDER BY seq";
    match database {
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn execute(database: &Database, sql: &'static str) {
    match database {
        Database::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
        Database::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
    }
}

async fn each_change_commits_with_its_event_or_not_at_all(db: TestDatabase) {
    let (database, store) = open(&db).await;
    let new = new_order(UserId::from(Uuid::now_v7()));
    let Created::New(order) = store.create(&new).await.unwrap() else {
        panic!("a new order");
    };
    let Cancelled::Done(_) = store.cancel(order.id, reason::BY_OWNER).await.unwrap() else {
        panic!("cancelled");
    };
    let events = outbox(&database).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["orders.v1.OrderCreated", "orders.v1.OrderCancelled"]
    );
    let created = pb::OrderCreated::decode(events[0].1.as_slice()).unwrap();
    assert_eq!(created.order_id, order.id.to_string());
    assert_eq!(created.order.unwrap().total_cents, 2500);
    let cancelled = pb::OrderCancelled::decode(events[1].1.as_slice()).unwrap();
    assert_eq!(cancelled.reason, "cancelled by the owner");
    assert_ne!(cancelled.event_id, created.event_id);

    // An outbox that cannot be written fails the change too: no order without its event.
    execute(&database, "ALTER TABLE outbox RENAME TO outbox_away").await;
    let lost = new_order(UserId::from(Uuid::now_v7()));
    assert!(store.create(&lost).await.is_err());
    let Created::New(pending) = ({
        execute(&database, "ALTER TABLE outbox_away RENAME TO outbox").await;
        store
            .create(&new_order(UserId::from(Uuid::now_v7())))
            .await
            .unwrap()
    }) else {
        panic!("a new order");
    };
    execute(&database, "ALTER TABLE outbox RENAME TO outbox_away").await;
    assert!(store.cancel(pending.id, reason::BY_OWNER).await.is_err());
    execute(&database, "ALTER TABLE outbox_away RENAME TO outbox").await;
    assert!(
        store.get(lost.id).await.unwrap().is_none(),
        "no order without its event"
    );
    assert_eq!(
        store.get(pending.id).await.unwrap().unwrap().status,
        OrderStatus::Pending,
        "no cancellation without its event"
    );
    assert_eq!(outbox(&database).await.len(), 3);
}

async fn an_account_deletion_is_applied_once(db: TestDatabase) {
    let (database, store) = open(&db).await;
    let (gone, other) = (UserId::from(Uuid::now_v7()), UserId::from(Uuid::now_v7()));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let Created::New(order) = store.create(&new_order(gone)).await.unwrap() else {
            panic!("a new order");
        };
        ids.push(order.id);
    }
    let Created::New(done) = store.create(&new_order(gone)).await.unwrap() else {
        panic!("a new order");
    };
    store.cancel(done.id, reason::BY_OWNER).await.unwrap();
    let Created::New(kept) = store.create(&new_order(other)).await.unwrap() else {
        panic!("a new order");
    };
    let event = Uuid::now_v7();
    let Applied::Now(cancelled) = store
        .cancel_for_deleted_account(CONSUMER, event, gone)
        .await
        .unwrap()
    else {
        panic!("applied now");
    };
    assert_eq!(cancelled.iter().map(|o| o.id).collect::<Vec<_>>(), ids);
    // Delivered again: nothing changes, no event.
    let before = outbox(&database).await.len();
    assert_eq!(
        store
            .cancel_for_deleted_account(CONSUMER, event, gone)
            .await
            .unwrap(),
        Applied::Before
    );
    assert_eq!(outbox(&database).await.len(), before);
    let reasons: Vec<String> = outbox(&database)
        .await
        .iter()
        .filter(|(t, _)| t == "orders.v1.OrderCancelled")
        .map(|(_, p)| pb::OrderCancelled::decode(p.as_slice()).unwrap().reason)
        .collect();
    assert_eq!(
        reasons,
        [
            "cancelled by the owner",
            "account deleted",
            "account deleted"
        ]
    );
    assert_eq!(
        store.get(kept.id).await.unwrap().unwrap().status,
        OrderStatus::Pending,
        "another account's orders are untouched"
    );
}

platform_testing::database_suite!(
    each_change_commits_with_its_event_or_not_at_all,
    an_account_deletion_is_applied_once,
);

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// The whole path on a real broker: orders publishes its events, cancels a deleted
/// account's orders once however often the deletion is delivered, parks what it
/// cannot read, and keeps serving while the broker is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_through_a_real_broker_and_survive_its_outage() {
    let mut nats = NatsServer::start().await;
    let url = nats.url();
    let stack = Stack::spawn_with(TestDatabase::sqlite(), |settings| {
        settings.events.nats_url = url;
        settings.events.poll_interval_ms = 20;
        settings.events.max_backoff_ms = 200;
        settings.events.max_attempts = 2;
    })
    .await;
    let (user, token) = stack.user("gone@example.com");
    let first = stack.create_order(order_request(), &token).await.unwrap();
    let second = stack.create_order(order_request(), &token).await.unwrap();

    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    platform_testing::wait::until("orders published", Duration::from_secs(20), async || {
        stream_messages(&js, ORDERS.name).await == 2
    })
    .await;

    // The same deletion twice (as a republish after a crash would deliver it), then
    // a message that is not a UserDeleted at all.
    USERS.ensure(&js).await.unwrap();
    let deleted = users_pb::UserDeleted {
        event_id: Uuid::now_v7().to_string(),
        user_id: user.clone(),
        occur_time: None,
    }
    .encode_to_vec();
    for payload in [deleted.clone(), deleted, b"\xff not protobuf".to_vec()] {
        js.publish(USER_DELETED, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    platform_testing::wait::until("orders cancelled", Duration::from_secs(20), async || {
        stack.get_order(&second.id, &token).await.unwrap().status
            == pb::OrderStatus::Cancelled as i32
    })
    .await;
    assert_eq!(
        stack.get_order(&first.id, &token).await.unwrap().status,
        pb::OrderStatus::Cancelled as i32
    );
    platform_testing::wait::until(
        "cancellations published",
        Duration::from_secs(20),
        async || stream_messages(&js, ORDERS.name).await == 4,
    )
    .await;
    // The redelivered deletion cancelled nothing more, so published nothing more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stream_messages(&js, ORDERS.name).await, 4);

    // The unreadable message was parked, once, without retries.
    let (_database, store) = open(&stack.db).await;
    platform_testing::wait::until("poison parked", Duration::from_secs(20), async || {
        !store.parked(CONSUMER).await.unwrap().is_empty()
    })
    .await;
    let parked = store.parked(CONSUMER).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].subject, USER_DELETED);
    assert_eq!(parked[0].attempts, 1);
    assert!(
        parked[0].reason.contains("not a users.v1.UserDeleted"),
        "{parked:?}"
    );

    // The broker goes away: orders are still taken, promptly, and published later.
    nats.stop().await;
    let during = tokio::time::timeout(
        Duration::from_secs(3),
        stack.create_order(order_request(), &token),
    )
    .await
    .expect("the RPC does not wait for the broker");
    during.unwrap();
    nats.resume().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    platform_testing::wait::until("backlog published", Duration::from_secs(30), async || {
        stream_messages(&js, ORDERS.name).await == 5
    })
    .await;
    stack.stop().await;
}
