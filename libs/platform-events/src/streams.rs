//! The platform's JetStream streams and subjects: named here once, documented next to
//! the event messages in `proto/*/v1/events.proto` and in the README.
//!
//! Each service owns the stream of its own events and creates it at start; a consumer
//! creates the stream it reads too (with the same configuration), so the order in
//! which services start does not matter. Creation is idempotent: an existing stream is
//! used as it is.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// One stream: its name, the subjects it keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    /// The stream's name.
    pub name: &'static str,
    /// The subjects it captures (one wildcard per service and API version).
    pub subject: &'static str,
    /// How long a message is kept (limits retention: then dropped, read or not).
    pub max_age: Duration,
    /// How long a `Nats-Msg-Id` is remembered, to drop republished events.
    pub duplicate_window: Duration,
}

const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);
const DEDUP: Duration = Duration::from_secs(120);

/// The users service's events.
pub const USERS: StreamSpec = StreamSpec {
    name: "USERS",
    subject: "users.v1.>",
    max_age: WEEK,
    duplicate_window: DEDUP,
};

/// The orders service's events.
pub const ORDERS: StreamSpec = StreamSpec {
    name: "ORDERS",
    subject: "orders.v1.>",
    max_age: WEEK,
    duplicate_window: DEDUP,
};

/// `users.v1.UserDeleted`.
pub const USER_DELETED: &str = "users.v1.user.deleted";
/// `orders.v1.OrderCreated`.
pub const ORDER_CREATED: &str = "orders.v1.order.created";
/// `orders.v1.OrderCancelled`.
pub const ORDER_CANCELLED: &str = "orders.v1.order.cancelled";

impl StreamSpec {
    /// The stream, created with this configuration if it does not exist yet.
    pub async fn ensure(
        &self,
        js: &jetstream::Context,
    ) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
        js.get_or_create_stream(stream::Config {
            name: self.name.to_owned(),
            subjects: vec![self.subject.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            ..Default::default()
        })
        .await
    }
}
