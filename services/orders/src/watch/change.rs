//! An event of the orders log read back as the `OrderChange` a watcher receives.

use platform_events::Record;
use platform_events::streams::{ORDER_CANCELLED, ORDER_CREATED};
use platform_proto::orders::v1 as pb;
use prost::Message;

/// One change, decoded once and shared by every watcher it goes to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    /// Where the event is in its log (stream or outbox sequence).
    pub(crate) position: u64,
    /// The account whose order changed.
    pub(crate) user_id: String,
    /// What the watcher is sent.
    pub(crate) message: pb::OrderChange,
}

/// The change `record` describes; `None` for an event that is not an order change
/// (a later kind of event on the same subjects) or that does not decode, which is
/// logged and skipped: one bad record must not end every watch.
pub(crate) fn decode(record: &Record) -> Option<Change> {
    let kind = match record.event_type.as_deref() {
        Some("orders.v1.OrderCreated") => pb::OrderChangeKind::Created,
        Some("orders.v1.OrderCancelled") => pb::OrderChangeKind::Cancelled,
        Some(_) => return None,
        None if record.subject == ORDER_CREATED => pb::OrderChangeKind::Created,
        None if record.subject == ORDER_CANCELLED => pb::OrderChangeKind::Cancelled,
        None => return None,
    };
    let payload = record.payload.as_ref();
    let decoded = match kind {
        pb::OrderChangeKind::Created => pb::OrderCreated::decode(payload).map(|event| {
            let change = pb::OrderChange {
                event_id: event.event_id,
                kind: kind as i32,
                order: event.order,
                occur_time: event.occur_time,
                reason: String::new(),
            };
            (event.user_id, change)
        }),
        _ => pb::OrderCancelled::decode(payload).map(|event| {
            let change = pb::OrderChange {
                event_id: event.event_id,
                kind: kind as i32,
                order: event.order,
                occur_time: event.occur_time,
                reason: event.reason,
            };
            (event.user_id, change)
        }),
    };
    match decoded {
        Ok((user_id, message)) => Some(Change {
            position: record.position,
            user_id,
            message,
        }),
        Err(error) => {
            tracing::warn!(
                position = record.position,
                subject = %record.subject,
                %error,
                "an order event does not decode; watchers skip it"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_type: Option<&str>, subject: &str, payload: Vec<u8>) -> Record {
        Record {
            position: 7,
            event_id: None,
            subject: subject.to_owned(),
            event_type: event_type.map(str::to_owned),
            payload: payload.into(),
        }
    }

    #[test]
    fn events_become_changes_by_their_type_or_else_their_subject() {
        let cancelled = pb::OrderCancelled {
            event_id: "e1".to_owned(),
            user_id: "u1".to_owned(),
            reason: "account deleted".to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        let change = decode(&record(None, ORDER_CANCELLED, cancelled)).expect("a change");
        assert_eq!(change.position, 7);
        assert_eq!(change.user_id, "u1");
        assert_eq!(change.message.kind, pb::OrderChangeKind::Cancelled as i32);
        assert_eq!(change.message.reason, "account deleted");

        let created = pb::OrderCreated {
            event_id: "e2".to_owned(),
            user_id: "u2".to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        let typed = record(Some("orders.v1.OrderCreated"), "anything", created);
        let change = decode(&typed).expect("a change");
        assert_eq!(change.message.kind, pb::OrderChangeKind::Created as i32);
        assert_eq!(change.message.event_id, "e2");

        let other = record(
            Some("orders.v1.OrderShipped"),
            "orders.v1.order.shipped",
            vec![],
        );
        assert_eq!(decode(&other), None, "a later kind of event is skipped");
        let junk = record(None, ORDER_CREATED, b"\xff\xff".to_vec());
        assert_eq!(decode(&junk), None, "an undecodable event is skipped");
    }
}
