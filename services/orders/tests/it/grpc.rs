//! The orders contract over gRPC, against the real orders and users services on port
//! 0, on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Stack, authed};
use platform_proto::orders::v1 as pb;
use platform_proto::users::v1 as users_pb;
use platform_testing::TestDatabase;
use tonic::Code;
use tonic_types::StatusExt;

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

async fn stack(db: TestDatabase) -> Stack {
    let users_db = if db.postgres_name().is_some() {
        TestDatabase::postgres().await
    } else {
        TestDatabase::sqlite()
    };
    Stack::spawn(db, users_db).await
}

async fn full_lifecycle(db: TestDatabase) {
    let stack = stack(db).await;
    let (ada, token) = stack.user("ada@example.com").await;
    let mut orders = stack.orders.clone();

    let created = orders
        .create_order(authed(order_request(""), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.user_id, ada, "the order belongs to the caller");
    assert_eq!(created.total_cents, 2 * 1250 + 99);
    assert_eq!(created.status, pb::OrderStatus::Pending as i32);
    assert_eq!(created.items.len(), 2);

    let read = orders
        .get_order(authed(
            pb::GetOrderRequest {
                id: created.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, created);

    let listed = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.orders, vec![created.clone()]);
    assert!(listed.next_page_token.is_empty());

    let cancelled = orders
        .cancel_order(authed(
            pb::CancelOrderRequest {
                id: created.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    let again = orders
        .cancel_order(authed(
            pb::CancelOrderRequest {
                id: created.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    let pending = orders
        .list_orders(authed(
            pb::ListOrdersRequest {
                status: pb::OrderStatus::Pending as i32,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(pending.orders.is_empty());
    stack.stop().await;
}

async fn retries_with_one_key_make_one_order(db: TestDatabase) {
    let stack = stack(db).await;
    let (_, token) = stack.user("ada@example.com").await;
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

    let listed = stack
        .orders
        .clone()
        .list_orders(authed(pb::ListOrdersRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.orders.len(), 1);

    let mut different = order_request("checkout-42");
    different.items[0].quantity = 5;
    let status = stack
        .orders
        .clone()
        .create_order(authed(different, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    stack.stop().await;
}

async fn invalid_orders_list_their_violations(db: TestDatabase) {
    let stack = stack(db).await;
    let (_, token) = stack.user("ada@example.com").await;
    let mut orders = stack.orders.clone();
    let fields = |status: &tonic::Status| -> Vec<String> {
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default()
    };

    let empty = orders
        .create_order(authed(pb::CreateOrderRequest::default(), &token))
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert_eq!(fields(&empty), ["items"]);

    let bad = orders
        .create_order(authed(
            pb::CreateOrderRequest {
                items: vec![item("", 0, -5), item(&"X".repeat(65), 1, 1)],
                request_id: "k".repeat(129),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        fields(&bad),
        [
            "items[0].quantity",
            "items[0].unit_price_cents",
            "items[0].sku",
            "items[1].sku",
            "request_id"
        ]
    );

    let overflow = orders
        .create_order(authed(
            pb::CreateOrderRequest {
                items: vec![item("A", 1_000_000, i64::MAX / 1000)],
                request_id: String::new(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(overflow.code(), Code::InvalidArgument);
    assert!(
        overflow.message().contains("exceeds"),
        "{}",
        overflow.message()
    );

    let listed = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.orders.is_empty(), "nothing stored");
    stack.stop().await;
}

async fn others_orders_are_not_found_and_admins_see_all(db: TestDatabase) {
    let stack = stack(db).await;
    let (ada, ada_token) = stack.user("ada@example.com").await;
    let (_, bob_token) = stack.user("bob@example.com").await;
    let mut orders = stack.orders.clone();
    let adas = orders
        .create_order(authed(order_request(""), &ada_token))
        .await
        .unwrap()
        .into_inner();
    orders
        .create_order(authed(order_request(""), &bob_token))
        .await
        .unwrap();

    let get = orders
        .get_order(authed(
            pb::GetOrderRequest {
                id: adas.id.clone(),
            },
            &bob_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let cancel = orders
        .cancel_order(authed(
            pb::CancelOrderRequest {
                id: adas.id.clone(),
            },
            &bob_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::NotFound);
    let snoop = orders
        .list_orders(authed(
            pb::ListOrdersRequest {
                user_id: ada.clone(),
                ..Default::default()
            },
            &bob_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(snoop.code(), Code::PermissionDenied);
    let bobs_view = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &bob_token))
        .await
        .unwrap()
        .into_inner();
    assert!(bobs_view.orders.iter().all(|o| o.user_id != ada));

    let (_, admin_token) = stack.admin("root@example.com").await;
    let all = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.orders.len(), 2);
    let only_ada = orders
        .list_orders(authed(
            pb::ListOrdersRequest {
                user_id: ada.clone(),
                ..Default::default()
            },
            &admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_ada.orders, vec![adas.clone()]);
    let cancelled = orders
        .cancel_order(authed(pb::CancelOrderRequest { id: adas.id }, &admin_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    stack.stop().await;
}

async fn missing_or_bad_tokens_are_unauthenticated(db: TestDatabase) {
    let stack = stack(db).await;
    let mut orders = stack.orders.clone();
    let none = orders.create_order(order_request("")).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    let bad = orders
        .create_order(authed(order_request(""), "not.a.jwt"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    let listed = orders
        .list_orders(pb::ListOrdersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(listed.code(), Code::Unauthenticated);
    stack.stop().await;
}

async fn a_deleted_user_cannot_order(db: TestDatabase) {
    let stack = stack(db).await;
    let (ada, token) = stack.user("ada@example.com").await;
    stack
        .users_client
        .clone()
        .delete_user(authed(users_pb::DeleteUserRequest { id: ada }, &token))
        .await
        .unwrap();
    let status = stack
        .orders
        .clone()
        .create_order(authed(order_request(""), &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("no longer exists"));
    stack.stop().await;
}

async fn users_down_means_unavailable_and_nothing_stored(db: TestDatabase) {
    let mut stack = stack(db).await;
    // A first order makes orders learn the signing keys.
    let (_, ada_token) = stack.user("ada@example.com").await;
    stack
        .orders
        .clone()
        .create_order(authed(order_request(""), &ada_token))
        .await
        .unwrap();
    let (_, bob_token) = stack.user("bob@example.com").await;

    let users = stack.users.take().unwrap();
    let users_settings = users.stop().await;

    let mut orders = stack.orders.clone();
    let mut request = authed(order_request("bob-1"), &bob_token);
    request.set_timeout(Duration::from_secs(5));
    let status = tokio::time::timeout(Duration::from_secs(10), orders.create_order(request))
        .await
        .expect("answers, never hangs")
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{status:?}"
    );
    // Orders stops taking traffic while it cannot confirm accounts.
    let channel = crate::common::channel(stack.orders_addr).await;
    crate::common::wait_status(
        channel.clone(),
        "orders.v1.OrderService",
        tonic_health::pb::health_check_response::ServingStatus::NotServing,
    )
    .await;

    // Users comes back on the same address; orders recovers by itself.
    let mut settings = users_settings;
    settings.grpc.addr = stack.users_addr_for_restart();
    stack.users = Some(crate::common::Users::start(settings).await);
    crate::common::wait_serving(channel, "orders.v1.OrderService").await;
    let bobs = orders
        .list_orders(authed(pb::ListOrdersRequest::default(), &bob_token))
        .await
        .unwrap()
        .into_inner();
    assert!(bobs.orders.is_empty(), "the refused order was not written");
    orders
        .create_order(authed(order_request("bob-1"), &bob_token))
        .await
        .expect("works again");
    stack.stop().await;
}

async fn paging_returns_every_order_once_newest_first(db: TestDatabase) {
    let stack = stack(db).await;
    let (_, token) = stack.user("ada@example.com").await;
    let mut orders = stack.orders.clone();
    let mut created = Vec::new();
    for _ in 0..23 {
        created.push(
            orders
                .create_order(authed(order_request(""), &token))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = orders
            .list_orders(authed(
                pb::ListOrdersRequest {
                    page_size: 5,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
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
    missing_or_bad_tokens_are_unauthenticated,
    a_deleted_user_cannot_order,
    users_down_means_unavailable_and_nothing_stored,
    paging_returns_every_order_once_newest_first,
);
