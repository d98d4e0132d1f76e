//! The store suite: every `OrderStore` behaviour, on SQLite and on PostgreSQL,
//! including the races that idempotency and cancellation must survive.

use std::collections::HashSet;
use std::sync::Arc;

use orders::domain::{Items, OrderId, OrderStatus, RawItem, UserId};
use orders::store::{self, Cancelled, Created, Filter, MIGRATIONS, NewOrder, OrderStore, Page};
use platform_db::{Database, DatabaseSettings};
use platform_testing::TestDatabase;
use uuid::Uuid;

async fn open(db: &TestDatabase) -> (Database, Arc<dyn OrderStore>) {
    let mut settings = DatabaseSettings::new(db.url());
    settings.max_connections = 20;
    let database = Database::connect_lazy(&settings).unwrap();
    database.migrate(MIGRATIONS).await.unwrap();
    let store = store::open(&database);
    (database, store)
}

fn items(skus: &[(&str, i32, i64)]) -> Items {
    let raw: Vec<RawItem<'_>> = skus
        .iter()
        .map(|(sku, quantity, price)| RawItem {
            sku,
            quantity: *quantity,
            unit_price_cents: *price,
        })
        .collect();
    Items::parse(&raw).unwrap()
}

/// Every order of `user`, whatever its status.
fn first(limit: u32) -> Page {
    Page { limit, after: None }
}

fn of(user: UserId) -> Filter {
    Filter {
        user_id: Some(user),
        status: None,
    }
}

fn new_order(user: UserId, key: Option<&str>) -> NewOrder {
    NewOrder {
        id: OrderId::generate(),
        user_id: user,
        items: items(&[("BOOK-1", 2, 1250), ("PEN-7", 3, 99)]),
        request_id: key.map(str::to_owned),
    }
}

fn user() -> UserId {
    UserId::from(Uuid::now_v7())
}

async fn creates_and_reads_back_with_items_in_order(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let new = new_order(user(), None);
    let Created::New(created) = store.create(&new).await.unwrap() else {
        panic!("expected a new order");
    };
    assert_eq!(created.total_cents, 2 * 1250 + 3 * 99);
    assert_eq!(created.status, OrderStatus::Pending);
    let skus: Vec<_> = created.items.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!(skus, ["BOOK-1", "PEN-7"]);
    let read = store.get(new.id).await.unwrap().expect("stored");
    assert_eq!(read, created);
    assert!(store.get(OrderId::generate()).await.unwrap().is_none());
}

async fn same_key_returns_the_first_order(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let owner = user();
    let Created::New(first) = store
        .create(&new_order(owner, Some("key-1")))
        .await
        .unwrap()
    else {
        panic!("expected a new order");
    };
    let again = store
        .create(&new_order(owner, Some("key-1")))
        .await
        .unwrap();
    assert_eq!(again, Created::Retry(first.clone()));

    // Another caller may use the same key for their own order.
    assert!(matches!(
        store
            .create(&new_order(user(), Some("key-1")))
            .await
            .unwrap(),
        Created::New(_)
    ));
    // No key: always a new order.
    assert!(matches!(
        store.create(&new_order(owner, None)).await.unwrap(),
        Created::New(_)
    ));
    assert!(matches!(
        store.create(&new_order(owner, None)).await.unwrap(),
        Created::New(_)
    ));
}

async fn same_key_with_other_items_is_reported(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let owner = user();
    store
        .create(&new_order(owner, Some("key-1")))
        .await
        .unwrap();
    let mut different = new_order(owner, Some("key-1"));
    different.items = items(&[("OTHER", 1, 1)]);
    assert!(matches!(
        store.create(&different).await.unwrap(),
        Created::KeyReused(_)
    ));
    let all = store.list(of(owner), first(10)).await.unwrap();
    assert_eq!(all.len(), 1, "no second order");
}

async fn fifty_racing_retries_make_one_order(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let owner = user();
    let attempts = (0..50).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.create(&new_order(owner, Some("race"))).await })
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut orders = Vec::new();
    for result in results {
        match result.unwrap().unwrap() {
            Created::New(order) | Created::Retry(order) => orders.push(order),
            Created::KeyReused(_) => panic!("same items must not count as reuse"),
        }
    }
    assert_eq!(orders.len(), 50);
    assert!(
        orders.iter().all(|o| *o == orders[0]),
        "fifty identical answers"
    );
    let stored = store.list(of(owner), first(100)).await.unwrap();
    assert_eq!(stored.len(), 1, "exactly one order");
    assert_eq!(stored[0], orders[0]);
}

async fn cancels_once_even_when_racing(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let Created::New(order) = store.create(&new_order(user(), None)).await.unwrap() else {
        panic!("expected a new order");
    };
    let racers = (0..8).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.cancel(order.id, "test").await })
    });
    let outcomes: Vec<Cancelled> = futures_util::future::join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let done = outcomes
        .iter()
        .filter(|o| matches!(o, Cancelled::Done(_)))
        .count();
    let not_pending = outcomes
        .iter()
        .filter(|o| matches!(o, Cancelled::NotPending(_)))
        .count();
    assert_eq!((done, not_pending), (1, 7), "{outcomes:?}");
    let stored = store.get(order.id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Cancelled);
    assert!(stored.update_time >= order.update_time);
    assert_eq!(
        store.cancel(OrderId::generate(), "test").await.unwrap(),
        Cancelled::NotFound
    );
}

async fn lists_newest_first_by_keyset_with_filters(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let (alice, bob) = (user(), user());
    let mut alices = Vec::new();
    for i in 0..17 {
        let Created::New(order) = store.create(&new_order(alice, None)).await.unwrap() else {
            panic!()
        };
        if i % 3 == 0 {
            store.cancel(order.id, "test").await.unwrap();
        }
        alices.push(order.id);
        store.create(&new_order(bob, None)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(of(alice), Page { limit: 4, after })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(
            page.iter()
                .all(|o| o.user_id == alice && o.items.len() == 2)
        );
        after = page.last().map(|o| o.id);
        seen.extend(page.into_iter().map(|o| o.id));
    }
    alices.reverse();
    assert_eq!(seen, alices, "each of alice's orders once, newest first");

    let cancelled = store
        .list(
            Filter {
                user_id: Some(alice),
                status: Some(OrderStatus::Cancelled),
            },
            first(100),
        )
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 6);
    let everyone = store.list(Filter::default(), first(1000)).await.unwrap();
    assert_eq!(everyone.len(), 34);
    assert_eq!(
        everyone.iter().map(|o| o.id).collect::<HashSet<_>>().len(),
        34
    );
}

/// Makes the database refuse one SKU while items are inserted, to see the whole
/// order roll back.
async fn refuse_sku(database: &Database, sku: &str) {
    match database {
        Database::Postgres(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE FUNCTION refuse_sku() RETURNS trigger AS $$ BEGIN \
                   IF NEW.sku = '{sku}' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; \
                 END $$ LANGUAGE plpgsql"
            )))
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER refuse_sku BEFORE INSERT ON order_items \
                 FOR EACH ROW EXECUTE FUNCTION refuse_sku()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Database::Sqlite(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TRIGGER refuse_sku BEFORE INSERT ON order_items \
                 WHEN NEW.sku = '{sku}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )))
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

async fn a_failed_write_leaves_nothing_behind(db: TestDatabase) {
    let (database, store) = open(&db).await;
    refuse_sku(&database, "POISON").await;
    let owner = user();
    let mut order = new_order(owner, Some("k"));
    order.items = items(&[("FINE", 1, 1), ("POISON", 1, 1)]);
    store.create(&order).await.unwrap_err();
    assert!(
        store.get(order.id).await.unwrap().is_none(),
        "no order without its items"
    );
    let count: i64 = match &database {
        Database::Postgres(pool) => sqlx::query_scalar("SELECT count(*) FROM order_items")
            .fetch_one(pool)
            .await
            .unwrap(),
        Database::Sqlite(pool) => sqlx::query_scalar("SELECT count(*) FROM order_items")
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    assert_eq!(count, 0, "no items without their order");
    // The key is still free: a corrected retry goes through.
    let mut retry = new_order(owner, Some("k"));
    retry.items = items(&[("FINE", 1, 1)]);
    assert!(matches!(
        store.create(&retry).await.unwrap(),
        Created::New(_)
    ));
}

platform_testing::database_suite!(
    creates_and_reads_back_with_items_in_order,
    same_key_returns_the_first_order,
    same_key_with_other_items_is_reported,
    fifty_racing_retries_make_one_order,
    cancels_once_even_when_racing,
    lists_newest_first_by_keyset_with_filters,
    a_failed_write_leaves_nothing_behind,
);
