//! `WatchOrders`: each watcher sees the changes to its own orders (an admin, everyone's)
//! as they are committed, resumes after the last one it saw with nothing missed or
//! repeated, is told clearly when it cannot resume or fell behind, and is let go at
//! once when the server drains; with a real NATS broker and without one (the
//! embedded default), on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use orders::domain::{Items, OrderId, RawItem, UserId};
use orders::store::{self, Created, MIGRATIONS, NewOrder, OrderStore};
use platform_db::{Database, DatabaseSettings};
use platform_proto::orders::v1 as pb;
use platform_testing::nats::NatsServer;
use platform_testing::{TestDatabase, refused};
use tonic::{Code, Streaming};
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::common::{Stack, order_request, watch_on};

/// Long enough for a change to travel on a loaded machine, short enough to fail fast.
const WITHIN: Duration = Duration::from_secs(15);

fn everything() -> pb::WatchOrdersRequest {
    pb::WatchOrdersRequest::default()
}

fn after(event_id: &str) -> pb::WatchOrdersRequest {
    pb::WatchOrdersRequest {
        after_event_id: event_id.to_owned(),
        ..Default::default()
    }
}

fn of_user(user_id: &str) -> pb::WatchOrdersRequest {
    pb::WatchOrdersRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    }
}

/// The next change on `stream`, failing the test when none comes.
async fn next(stream: &mut Streaming<pb::OrderChange>) -> pb::OrderChange {
    tokio::time::timeout(WITHIN, stream.message())
        .await
        .expect("a change arrives in time")
        .expect("the watch goes on")
        .expect("the watch is still open")
}

/// The kind, order id and reason of a change: what a test compares.
fn seen(change: &pb::OrderChange) -> (pb::OrderChangeKind, String, String) {
    let kind = pb::OrderChangeKind::try_from(change.kind).expect("a known kind");
    let order = change.order.as_ref().expect("the order");
    (kind, order.id.clone(), change.reason.clone())
}

fn created(id: &str) -> (pb::OrderChangeKind, String, String) {
    (pb::OrderChangeKind::Created, id.to_owned(), String::new())
}

fn cancelled(id: &str, reason: &str) -> (pb::OrderChangeKind, String, String) {
    (
        pb::OrderChangeKind::Cancelled,
        id.to_owned(),
        reason.to_owned(),
    )
}

/// Orders with events through a broker of the test's own.
async fn with_broker(db: TestDatabase) -> (Stack, NatsServer) {
    let nats = NatsServer::start().await;
    let url = nats.url();
    let stack = Stack::spawn_with(db, |settings| {
        settings.events.nats_url = url;
        settings.events.poll_interval_ms = 20;
        settings.events.max_backoff_ms = 200;
    })
    .await;
    (stack, nats)
}

/// Ada sees her orders placed and cancelled, never Bob's; an admin sees both, or
/// only Bob's when asking for them; Bob may not ask for Ada's.
async fn own_changes(stack: &Stack) {
    let (ada, ada_token) = stack.user("ada@example.com");
    let (bob, bob_token) = stack.user("bob@example.com");
    let (_, admin_token) = stack.admin("root@example.com");
    let mut ada_watch = stack.watch(everything(), &ada_token).await.unwrap();
    let mut all_watch = stack.watch(everything(), &admin_token).await.unwrap();
    let mut bob_watch = stack.watch(of_user(&bob), &admin_token).await.unwrap();

    // Bob's order is committed first: had Ada's watch been sent it, it would come first.
    let bobs = stack
        .create_order(order_request(), &bob_token)
        .await
        .unwrap();
    let first = stack
        .create_order(order_request(), &ada_token)
        .await
        .unwrap();
    stack.cancel_order(&first.id, &ada_token).await.unwrap();
    let second = stack
        .create_order(order_request(), &ada_token)
        .await
        .unwrap();

    let change = next(&mut ada_watch).await;
    assert_eq!(seen(&change), created(&first.id));
    let order = change.order.as_ref().unwrap();
    assert_eq!(order.user_id, ada);
    assert_eq!(order.total_cents, 1250);
    assert_eq!(order.status, pb::OrderStatus::Pending as i32);
    assert!(change.occur_time.is_some());
    assert!(Uuid::parse_str(&change.event_id).is_ok(), "{change:?}");
    let change = next(&mut ada_watch).await;
    assert_eq!(
        seen(&change),
        cancelled(&first.id, "cancelled by the owner")
    );
    assert_eq!(
        change.order.unwrap().status,
        pb::OrderStatus::Cancelled as i32,
        "the order as it is after the change"
    );
    assert_eq!(seen(&next(&mut ada_watch).await), created(&second.id));

    let mut everyone = Vec::new();
    for _ in 0..4 {
        everyone.push(seen(&next(&mut all_watch).await));
    }
    assert_eq!(
        everyone,
        [
            created(&bobs.id),
            created(&first.id),
            cancelled(&first.id, "cancelled by the owner"),
            created(&second.id),
        ]
    );
    // An admin cancelling shows as such, to the owner's watchers and the admin's.
    stack.cancel_order(&bobs.id, &admin_token).await.unwrap();
    assert_eq!(seen(&next(&mut bob_watch).await), created(&bobs.id));
    assert_eq!(
        seen(&next(&mut bob_watch).await),
        cancelled(&bobs.id, "cancelled by an admin")
    );

    let denied = refused(stack.watch(of_user(&ada), &bob_token)).await;
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let anonymous = refused(stack.orders.clone().watch_orders(everything())).await;
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

/// A client that saw some changes and went away gets exactly the ones after the
/// last it saw, those made while it was away included, then live ones.
async fn resumes(stack: &Stack) {
    let (_, token) = stack.user("ada@example.com");
    let mut watch = stack.watch(everything(), &token).await.unwrap();
    let mut placed = Vec::new();
    for _ in 0..3 {
        placed.push(stack.create_order(order_request(), &token).await.unwrap());
    }
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(next(&mut watch).await);
    }
    drop(watch);
    // While away: one more order, and a cancellation of the first.
    let away = stack.create_order(order_request(), &token).await.unwrap();
    stack.cancel_order(&placed[0].id, &token).await.unwrap();

    let mut resumed = stack
        .watch(after(&received[1].event_id), &token)
        .await
        .unwrap();
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(next(&mut resumed).await);
    }
    assert_eq!(
        replayed.iter().map(seen).collect::<Vec<_>>(),
        [
            created(&placed[2].id),
            created(&away.id),
            cancelled(&placed[0].id, "cancelled by the owner"),
        ]
    );
    assert_eq!(
        replayed[0].event_id, received[2].event_id,
        "the same change has the same id, live or replayed"
    );
    // Then live, with nothing replayed twice.
    let live = stack.create_order(order_request(), &token).await.unwrap();
    assert_eq!(seen(&next(&mut resumed).await), created(&live.id));

    // Resuming after the newest change sends only what comes next.
    let newest = replayed[2].event_id.clone();
    let mut caught_up = stack.watch(after(&newest), &token).await.unwrap();
    assert_eq!(seen(&next(&mut caught_up).await), created(&live.id));
}

/// An id that names no change is INVALID_ARGUMENT, one older than anything kept is
/// FAILED_PRECONDITION: never a watch that silently skips what the client missed.
async fn refuses_what_it_cannot_resume(stack: &Stack) {
    let (_, token) = stack.user("ada@example.com");
    stack.create_order(order_request(), &token).await.unwrap();
    // Something must be kept for an id to be older than it.
    let mut watch = stack.watch(everything(), &token).await.unwrap();
    stack.create_order(order_request(), &token).await.unwrap();
    next(&mut watch).await;

    let malformed = refused(stack.watch(after("yesterday"), &token)).await;
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    let violations = malformed
        .get_details_bad_request()
        .unwrap()
        .field_violations;
    assert_eq!(violations[0].field, "after_event_id");

    let unknown = Uuid::now_v7().to_string();
    let unknown = refused(stack.watch(after(&unknown), &token)).await;
    assert_eq!(unknown.code(), Code::InvalidArgument, "{unknown:?}");
    assert!(unknown.message().contains("after_event_id"), "{unknown:?}");

    // A UUIDv7 from 2020: before the oldest change kept.
    let ancient = uuid::Builder::from_unix_timestamp_millis(1_600_000_000_000, &[7; 10])
        .into_uuid()
        .to_string();
    let expired = refused(stack.watch(after(&ancient), &token)).await;
    assert_eq!(expired.code(), Code::FailedPrecondition, "{expired:?}");
    assert!(expired.message().contains("no longer kept"), "{expired:?}");
}

/// Runs `scenario` against orders on `db`: with changes read from its own database,
/// or, with `broker`, from a NATS broker.
async fn watched(db: TestDatabase, broker: bool, scenario: impl AsyncFnOnce(&Stack)) {
    let (stack, nats) = if broker {
        let (stack, nats) = with_broker(db).await;
        (stack, Some(nats))
    } else {
        (Stack::spawn(db).await, None)
    };
    scenario(&stack).await;
    stack.stop().await;
    drop(nats);
}

/// Each scenario as two tests, orders alone (`embedded_*`) and with a broker
/// (`broker_*`), each on both databases.
macro_rules! scenarios {
    ($($scenario:ident: $embedded:ident, $broker:ident;)*) => {
        $(
            async fn $embedded(db: TestDatabase) {
                watched(db, false, $scenario).await;
            }

            async fn $broker(db: TestDatabase) {
                watched(db, true, $scenario).await;
            }
        )*
        platform_testing::database_suite!($($embedded, $broker),*);
    };
}

scenarios! {
    own_changes: embedded_own_changes, broker_own_changes;
    resumes: embedded_resumes, broker_resumes;
    refuses_what_it_cannot_resume: embedded_refuses, broker_refuses;
}

/// Two replicas share one database and broker: a watcher on either sees the changes
/// made through the other, and resumes on one after what it saw on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_every_replica_and_resumes_on_another() {
    let (stack, _nats) = with_broker(TestDatabase::postgres().await).await;
    let other = stack.replica().await;
    let (_, token) = stack.user("ada@example.com");
    let mut watch = watch_on(&other.orders, everything(), &token).await.unwrap();
    let first = stack.create_order(order_request(), &token).await.unwrap();
    let change = next(&mut watch).await;
    assert_eq!(seen(&change), created(&first.id));
    drop(watch);

    let second = stack.create_order(order_request(), &token).await.unwrap();
    let mut resumed = stack.watch(after(&change.event_id), &token).await.unwrap();
    assert_eq!(seen(&next(&mut resumed).await), created(&second.id));
    other.stop().await;
    stack.stop().await;
}

async fn open_store(db: &TestDatabase) -> std::sync::Arc<dyn OrderStore> {
    let database = Database::connect_lazy(&DatabaseSettings::new(db.url())).unwrap();
    database.migrate(MIGRATIONS).await.unwrap();
    store::open(&database)
}

/// A watcher that does not keep up is ended with RESOURCE_EXHAUSTED after what was
/// queued for it, and resumes from its last change without a gap; its neighbour,
/// watching the same account, is not held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_is_ended_and_resumes_without_a_gap() {
    let stack = Stack::spawn_with(TestDatabase::sqlite(), |settings| {
        settings.watch.buffer = 2;
        // Rows written behind the service's back are read at the next poll, all at once.
        settings.events.poll_interval_ms = 1_000;
    })
    .await;
    let (ada, token) = stack.user("ada@example.com");
    let mut slow = stack.watch(everything(), &token).await.unwrap();

    // Fifty orders committed outside the service: the follower reads them in one go.
    let outside = open_store(&stack.db).await;
    let user = UserId::parse("user_id", &ada).unwrap();
    let items = Items::parse(&[RawItem {
        sku: "BOOK-1",
        quantity: 1,
        unit_price_cents: 100,
    }])
    .unwrap();
    let mut placed = Vec::new();
    for _ in 0..50 {
        let order = NewOrder {
            id: OrderId::generate(),
            user_id: user,
            items: items.clone(),
            request_id: None,
        };
        let Created::New(order) = outside.create(&order).await.unwrap() else {
            panic!("a new order");
        };
        placed.push(order.id.to_string());
    }

    let mut received = Vec::new();
    let ended = loop {
        match tokio::time::timeout(WITHIN, slow.message()).await.unwrap() {
            Ok(Some(change)) => received.push(change),
            Ok(None) => panic!("ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("after_event_id"), "{ended:?}");
    assert!(
        (2..50).contains(&received.len()),
        "what was queued, then the error: {}",
        received.len()
    );
    let last = received.last().unwrap().event_id.clone();

    let mut resumed = stack.watch(after(&last), &token).await.unwrap();
    let mut ids: Vec<String> = received.iter().map(|c| seen(c).1).collect();
    while ids.len() < placed.len() {
        ids.push(seen(&next(&mut resumed).await).1);
    }
    assert_eq!(ids, placed, "every order once, in order");
    stack.stop().await;
}

/// Shutting down ends every watch without an error at once: the drain does not wait
/// out its grace period for streams that would never end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_watches_without_waiting_for_the_grace_period() {
    let stack = Stack::spawn_with(TestDatabase::sqlite(), |settings| {
        settings.grpc.grace_period_ms = 60_000;
    })
    .await;
    let (_, token) = stack.user("ada@example.com");
    let mut watches = Vec::new();
    for _ in 0..3 {
        watches.push(stack.watch(everything(), &token).await.unwrap());
    }
    let started = Instant::now();
    stack.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    for mut watch in watches {
        let end = tokio::time::timeout(WITHIN, watch.message()).await.unwrap();
        assert!(matches!(end, Ok(None)), "a clean end: {end:?}");
    }
}

/// A commit wakes what publishes and follows its events: a watcher sees the change at
/// once even when the relay and the follower would otherwise poll only every minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_reaches_watchers_without_waiting_for_a_poll() {
    let nats = NatsServer::start().await;
    for broker in [None, Some(nats.url())] {
        let stack = Stack::spawn_with(TestDatabase::sqlite(), |settings| {
            settings.events.nats_url = broker.clone().unwrap_or_default();
            settings.events.poll_interval_ms = 60_000;
        })
        .await;
        let (_, token) = stack.user("ada@example.com");
        let mut watch = stack.watch(everything(), &token).await.unwrap();
        // The relay's first round (at start) is over once an earlier change went out.
        let first = stack.create_order(order_request(), &token).await.unwrap();
        assert_eq!(seen(&next(&mut watch).await), created(&first.id));

        let placed = Instant::now();
        let second = stack.create_order(order_request(), &token).await.unwrap();
        let change = tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("seen long before the next poll")
            .unwrap()
            .unwrap();
        assert_eq!(seen(&change), created(&second.id));
        assert!(
            placed.elapsed() < Duration::from_secs(5),
            "{broker:?}: {:?}",
            placed.elapsed()
        );
        stack.stop().await;
    }
}

/// Without a broker on PostgreSQL, a transaction may commit after a later one: the
/// watch waits for the missing sequence number and sends both in log order; and a
/// sequence number a rolled-back transaction used up holds nothing back for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_gaps_are_waited_for_then_passed() {
    use prost::Message;

    let stack = Stack::spawn(TestDatabase::postgres().await).await;
    let (ada, token) = stack.user("ada@example.com");
    let mut watch = stack.watch(everything(), &token).await.unwrap();
    let pool = sqlx::PgPool::connect(stack.db.url()).await.unwrap();
    let outbox_row = |event: &pb::OrderCreated| {
        sqlx::query(
            "INSERT INTO outbox (event_id, subject, event_type, payload, create_time) \
             VALUES ($1, 'orders.v1.order.created', 'orders.v1.OrderCreated', $2, now())",
        )
        .bind(Uuid::parse_str(&event.event_id).unwrap())
        .bind(event.encode_to_vec())
    };
    let slow = pb::OrderCreated {
        event_id: Uuid::now_v7().to_string(),
        user_id: ada.clone(),
        order: Some(pb::Order {
            id: "slow-order".to_owned(),
            user_id: ada.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };

    // A transaction takes a sequence number and is still open when a later one commits.
    let mut open = pool.begin().await.unwrap();
    outbox_row(&slow).execute(&mut *open).await.unwrap();
    let quick = stack.create_order(order_request(), &token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    open.commit().await.unwrap();
    assert_eq!(seen(&next(&mut watch).await), created("slow-order"));
    assert_eq!(seen(&next(&mut watch).await), created(&quick.id));

    // A rolled-back transaction leaves its number unused for good.
    let mut lost = pool.begin().await.unwrap();
    let mut gone = slow.clone();
    gone.event_id = Uuid::now_v7().to_string();
    outbox_row(&gone).execute(&mut *lost).await.unwrap();
    lost.rollback().await.unwrap();
    let after = stack.create_order(order_request(), &token).await.unwrap();
    let started = Instant::now();
    assert_eq!(seen(&next(&mut watch).await), created(&after.id));
    assert!(
        started.elapsed() < platform_events::tail::GAP_WAIT + Duration::from_secs(2),
        "passed after {:?}",
        started.elapsed()
    );
    pool.close().await;
    stack.stop().await;
}
