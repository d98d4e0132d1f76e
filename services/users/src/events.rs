//! The events the users service publishes (`proto/users/v1/events.proto`), as outbox
//! rows written by the store in the transaction of the change.

use chrono::{DateTime, Utc};
use platform_events::streams::USER_DELETED;
use platform_events::{OutboxEvent, new_event_id};
use platform_proto::users::v1 as pb;
use prost::Message;

use crate::domain::UserId;

/// `users.v1.UserDeleted` for the account `user_id`, deleted `at`.
pub fn user_deleted(user_id: UserId, at: DateTime<Utc>) -> OutboxEvent {
    let id = new_event_id();
    let event = pb::UserDeleted {
        event_id: id.to_string(),
        user_id: user_id.to_string(),
        occur_time: Some(platform_api::timestamp(at)),
    };
    OutboxEvent::new(
        id,
        USER_DELETED,
        "users.v1.UserDeleted",
        event.encode_to_vec(),
        at,
    )
}
