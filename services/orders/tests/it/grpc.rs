//! The orders contract over gRPC, against the real orders service on port 0 in front
//! of a fake users service, on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use platform_proto::orders::v1 as pb;
use platform_proto::users::v1 as users_pb;
use platform_testing::{TestDatabase, authed, refused};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_types::StatusExt;

use crate::common::{ORDERS, Stack};

fn item(sku: &str, quantity: i32, price: i64) -> pb::OrderItem {
    pb::OrderItem {
        sku: sku.to_owned(),
        quantity,
        unit_price_cents: price,
    }
}

fn order_request(key: &str) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        items: vec![item("BOOK-1", 2, 1250), item("PEN-7", 1, 99)],
        request_id: key.to_owned(),
    }
}

/// A `ListOrders` of every order the caller may see.
fn visible() -> pb::ListOrdersRequest {
    pb::ListOrdersRequest::default()
}

/// A `ListOrders` of one status.
fn with_status(status: pb::OrderStatus) -> pb::ListOrdersRequest {
    pb::ListOrdersRequest {
        status: status as i32,
        ..Default::default()
    }
}

/// A `ListOrders` of one user's orders.
fn of_user(user_id: &str) -> pb::ListOrdersRequest {
    pb::ListOrdersRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    }
}

async fn full_lifecycle(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (ada, token) = stack.user("ada@example.com");

    let created = stack.create_order(order_request(""), &token).await.unwrap();
    assert_eq!(created.user_id, ada, "the order belongs to the caller");
    assert_eq!(created.total_cents, 2 * 1250 + 99);
    assert_eq!(created.status, pb::OrderStatus::Pending as i32);
    assert_eq!(created.items.len(), 2);

    let read = stack.get_order(&created.id, &token).await.unwrap();
    assert_eq!(read, created);

    let listed = stack.list_orders(visible(), &token).await.unwrap();
    assert_eq!(listed.orders, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    let cancelled = stack.cancel_order(&created.id, &token).await.unwrap();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    let again = refused(stack.cancel_order(&created.id, &token)).await;
    assert_eq!(again.code(), Code::FailedPrecondition);

    let pending = stack
        .list_orders(with_status(pb::OrderStatus::Pending), &token)
        .await
        .unwrap();
    assert!(pending.orders.is_empty());
    stack.stop().await;
}

async fn retries_with_one_key_make_one_order(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (_, token) = stack.user("ada@example.com");
    let calls = (0..50).map(|_| {
        let mut orders = stack.orders.clone();
        let request = authed(order_request("checkout-42"), &token);
        tokio::spawn(async move { orders.create_order(request).await })
    });
    let answers: Vec<pb::Order> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().expect("every retry succeeds").into_inner())
        .collect();
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "fifty identical answers"
    );

    let listed = stack.list_orders(visible(), &token).await.unwrap();
    assert_eq!(listed.orders.len(), 1);

    let mut different = order_request("checkout-42");
    different.items[0].quantity = 5;
    let status = refused(stack.create_order(different, &token)).await;
    assert_eq!(status.code(), Code::AlreadyExists);
    stack.stop().await;
}

async fn invalid_orders_list_their_violations(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (_, token) = stack.user("ada@example.com");
    let fields = |status: &tonic::Status| -> Vec<String> {
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    };

    let empty = refused(stack.create_order(pb::CreateOrderRequest::default(), &token)).await;
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(fields(&empty), ["items"]);

    let bad = pb::CreateOrderRequest {
        items: vec![item("", 0, -5), item(&"X".repeat(65), 1, 1)],
        request_id: "k".repeat(129),
    };
    let bad = refused(stack.create_order(bad, &token)).await;
    assert_eq!(
        fields(&bad),
        [
            // Empty: too short, and not the pattern either.
            "items[0].sku",
            "items[0].sku",
            "items[0].quantity",
            "items[0].unit_price_cents",
            "items[1].sku",
            "request_id"
        ]
    );

    // Prices are bounded so that no total can overflow.
    let overflow = pb::CreateOrderRequest {
        items: vec![item("A", 1_000_000, i64::MAX / 1000)],
        request_id: String::new(),
    };
    let overflow = refused(stack.create_order(overflow, &token)).await;
    assert_eq!(overflow.code(), Code::InvalidArgument);
    assert_eq!(fields(&overflow), ["items[0].unit_price_cents"]);
    assert!(
        overflow
            .message()
            .contains("less than or equal to 10000000000"),
        "{}",
        overflow.message()
    );

    let listed = stack.list_orders(visible(), &token).await.unwrap();
    assert!(listed.orders.is_empty(), "nothing stored");
    stack.stop().await;
}

async fn others_orders_are_not_found_and_admins_see_all(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (ada, ada_token) = stack.user("ada@example.com");
    let (_, bob_token) = stack.user("bob@example.com");
    let adas = stack
        .create_order(order_request(""), &ada_token)
        .await
        .unwrap();
    stack
        .create_order(order_request(""), &bob_token)
        .await
        .unwrap();

    let get = refused(stack.get_order(&adas.id, &bob_token)).await;
    assert_eq!(get.code(), Code::NotFound);
    let cancel = refused(stack.cancel_order(&adas.id, &bob_token)).await;
    assert_eq!(cancel.code(), Code::NotFound);
    let snoop = refused(stack.list_orders(of_user(&ada), &bob_token)).await;
    assert_eq!(snoop.code(), Code::PermissionDenied);
    let bobs_view = stack.list_orders(visible(), &bob_token).await.unwrap();
    assert!(bobs_view.orders.iter().all(|o| o.user_id != ada));

    let (_, admin_token) = stack.admin("root@example.com");
    let all = stack.list_orders(visible(), &admin_token).await.unwrap();
    assert_eq!(all.orders.len(), 2);
    let only_ada = stack
        .list_orders(of_user(&ada), &admin_token)
        .await
        .unwrap();
    assert_eq!(only_ada.orders, vec![adas.clone()]);
    let cancelled = stack.cancel_order(&adas.id, &admin_token).await.unwrap();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    stack.stop().await;
}

async fn a_demoted_admin_loses_admin_rights_at_once(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (_, ada_token) = stack.user("ada@example.com");
    let adas = stack
        .create_order(order_request(""), &ada_token)
        .await
        .unwrap();
    let (root, root_token) = stack.admin("root@example.com");
    stack
        .get_order(&adas.id, &root_token)
        .await
        .expect("an admin sees it");

    // The token still says admin; the account no longer does.
    stack.users.set_role(&root, users_pb::Role::User);
    let get = refused(stack.get_order(&adas.id, &root_token)).await;
    assert_eq!(get.code(), Code::NotFound);
    let cancel = refused(stack.cancel_order(&adas.id, &root_token)).await;
    assert_eq!(cancel.code(), Code::NotFound);
    let all = stack.list_orders(visible(), &root_token).await.unwrap();
    assert!(all.orders.is_empty(), "only its own orders now");
    stack.stop().await;
}

async fn missing_or_bad_tokens_are_unauthenticated(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let mut orders = stack.orders.clone();
    let none = refused(orders.create_order(order_request(""))).await;
    assert_eq!(none.code(), Code::Unauthenticated);
    let bad = refused(stack.create_order(order_request(""), "not.a.jwt")).await;
    assert_eq!(bad.code(), Code::Unauthenticated);
    let listed = refused(orders.list_orders(visible())).await;
    assert_eq!(listed.code(), Code::Unauthenticated);
    stack.stop().await;
}

async fn a_deleted_user_cannot_order(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (ada, token) = stack.user("ada@example.com");
    stack.users.delete(&ada);
    let status = refused(stack.create_order(order_request(""), &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("no longer exists"));
    stack.stop().await;
}

async fn users_down_means_unavailable_and_nothing_stored(db: TestDatabase) {
    let mut stack = Stack::spawn(db).await;
    // A first order makes orders learn the signing keys.
    let (_, ada_token) = stack.user("ada@example.com");
    stack
        .create_order(order_request(""), &ada_token)
        .await
        .unwrap();
    let (_, bob_token) = stack.user("bob@example.com");

    stack.users.stop().await;

    let mut request = authed(order_request("bob-1"), &bob_token);
    request.set_timeout(Duration::from_secs(5));
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        stack.orders.clone().create_order(request),
    )
    .await
    .expect("answers, never hangs")
    .unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    // Orders stays in rotation: users being down is not something another orders
    // replica could fix, so readiness does not cascade.
    let channel = platform_testing::connect(stack.orders_addr).await;
    for _ in 0..6 {
        // Longer than the readiness checks' period in all.
        let status = platform_testing::grpc::health(channel.clone(), ORDERS).await;
        assert_eq!(status, Some(ServingStatus::Serving));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Users comes back on the same address; orders recovers by itself.
    stack.users.start().await;
    let bobs = stack.list_orders(visible(), &bob_token).await.unwrap();
    assert!(bobs.orders.is_empty(), "the refused order was not written");
    stack
        .create_order(order_request("bob-1"), &bob_token)
        .await
        .expect("works again");
    stack.stop().await;
}

async fn paging_returns_every_order_once_newest_first(db: TestDatabase) {
    let stack = Stack::spawn(db).await;
    let (_, token) = stack.user("ada@example.com");
    let mut created = Vec::new();
    for _ in 0..23 {
        let order = stack.create_order(order_request(""), &token).await.unwrap();
        created.push(order.id);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListOrdersRequest {
            page_size: 5,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = stack.list_orders(request, &token).await.unwrap();
        pages += 1;
        seen.extend(page.orders.into_iter().map(|o| o.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(pages, 5);
    assert_eq!(seen, created, "every order once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
    stack.stop().await;
}

platform_testing::database_suite!(
    full_lifecycle,
    retries_with_one_key_make_one_order,
    invalid_orders_list_their_violations,
    others_orders_are_not_found_and_admins_see_all,
    a_demoted_admin_loses_admin_rights_at_once,
    missing_or_bad_tokens_are_unauthenticated,
    a_deleted_user_cannot_order,
    users_down_means_unavailable_and_nothing_stored,
    paging_returns_every_order_once_newest_first,
);
