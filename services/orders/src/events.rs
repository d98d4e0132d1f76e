//! The events the orders service publishes (`proto/orders/v1/events.proto`), as
//! outbox rows written by the store in the transaction of the change.

use platform_events::streams::{ORDER_CANCELLED, ORDER_CREATED};
use platform_events::{OutboxEvent, new_event_id};
use platform_proto::orders::v1 as pb;
use prost::Message;

use crate::domain::Order;

/// Why an order was cancelled, as `OrderCancelled.reason` says it.
pub mod reason {
    /// Its owner cancelled it.
    pub const BY_OWNER: &str = "cancelled by the owner";
    /// An admin cancelled it.
    pub const BY_ADMIN: &str = "cancelled by an admin";
    /// The account that placed it was deleted.
    pub const ACCOUNT_DELETED: &str = "account deleted";
}

/// `orders.v1.OrderCreated` for `order`, just stored.
pub fn order_created(order: &Order) -> OutboxEvent {
    let id = new_event_id();
    let event = pb::OrderCreated {
        event_id: id.to_string(),
        order_id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        occur_time: Some(platform_api::timestamp(order.create_time)),
        order: Some(crate::api::to_proto(order.clone())),
    };
    OutboxEvent::new(
        id,
        ORDER_CREATED,
        "orders.v1.OrderCreated",
        event.encode_to_vec(),
        order.create_time,
    )
}

/// `orders.v1.OrderCancelled` for `order`, just cancelled for `reason`.
pub fn order_cancelled(order: &Order, reason: &str) -> OutboxEvent {
    let id = new_event_id();
    let event = pb::OrderCancelled {
        event_id: id.to_string(),
        order_id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        occur_time: Some(platform_api::timestamp(order.update_time)),
        reason: reason.to_owned(),
        order: Some(crate::api::to_proto(order.clone())),
    };
    OutboxEvent::new(
        id,
        ORDER_CANCELLED,
        "orders.v1.OrderCancelled",
        event.encode_to_vec(),
        order.update_time,
    )
}
