//! What orders does when other services' events arrive: an account deleted in users
//! cancels that account's pending orders (reason "account deleted").
//!
//! Read through the durable consumer [`CONSUMER`] on the `USERS` stream, shared by
//! every replica so each event is handled by one of them; applied once per event id
//! (see [`OrderStore::cancel_for_deleted_account`]).

use std::sync::Arc;

use platform_events::consumer::Subscription;
use platform_events::streams::{USER_DELETED, USERS};
use platform_events::{Delivery, HandleError, Handler};
use platform_proto::users::v1 as pb;
use prost::Message;
use uuid::Uuid;

use crate::domain::UserId;
use crate::store::{Applied, OrderStore, ParkedEvent};

/// The durable consumer's name.
pub const CONSUMER: &str = "orders-account-deleted";

/// Where account deletions are read from.
pub const ACCOUNT_DELETIONS: Subscription = Subscription {
    stream: USERS,
    durable: CONSUMER,
    subject: USER_DELETED,
};

/// Cancels the pending orders of deleted accounts.
#[derive(Debug, Clone)]
pub struct AccountDeletions {
    store: Arc<dyn OrderStore>,
}

impl AccountDeletions {
    /// The reaction, applied to `store`.
    pub fn new(store: Arc<dyn OrderStore>) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl Handler for AccountDeletions {
    async fn apply(&self, delivery: &Delivery) -> Result<(), HandleError> {
        let event = pb::UserDeleted::decode(delivery.payload.as_ref())
            .map_err(|e| HandleError::Malformed(format!("not a users.v1.UserDeleted: {e}")))?;
        let event_id = Uuid::parse_str(&event.event_id)
            .map_err(|_| HandleError::Malformed("event_id is not a UUID".to_owned()))?;
        let user_id = UserId::parse("user_id", &event.user_id)
            .map_err(|_| HandleError::Malformed("user_id is not a UUID".to_owned()))?;
        let applied = self
            .store
            .cancel_for_deleted_account(CONSUMER, event_id, user_id)
            .await
            .map_err(|e| HandleError::Failed(Box::new(e)))?;
        match applied {
            Applied::Now(orders) => tracing::info!(
                user.id = %user_id,
                event.id = %event_id,
                orders = orders.len(),
                "pending orders of a deleted account cancelled"
            ),
            Applied::Before => tracing::info!(
                event.id = %event_id,
                "account deletion delivered again; applied before"
            ),
        }
        Ok(())
    }

    async fn park(&self, delivery: &Delivery, reason: &HandleError) -> Result<(), HandleError> {
        self.store
            .park(&ParkedEvent {
                consumer: CONSUMER.to_owned(),
                stream_sequence: delivery.stream_sequence,
                subject: delivery.subject.clone(),
                event_id: delivery.message_id.clone(),
                payload: delivery.payload.to_vec(),
                reason: reason.to_string(),
                attempts: delivery.attempt,
            })
            .await
            .map_err(|e| HandleError::Failed(Box::new(e)))
    }
}
