//! The fan-out of one process: every change the follower reads goes to the watchers it
//! concerns (its account's, and those watching every account), each through its own
//! bounded queue.
//!
//! The hub never waits for a watcher. A watcher whose queue is full is dropped on the
//! spot and marked as lagging: it reads what it has queued, then ends with
//! RESOURCE_EXHAUSTED, so a slow client costs at most its queue and never holds back
//! the others. Subscribing reads the position the hub has reached in the same lock
//! that registers the queue, so every change after that position is queued and none
//! before it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::change::Change;

/// Gauge of the watchers connected to this process.
pub const ACTIVE_WATCHERS: &str = "orders_active_watchers";
/// Counter of watchers ended because they read too slowly.
pub const LAGGED_WATCHERS: &str = "orders_watch_lagged_total";

/// Whose changes a watcher receives.
pub(crate) type Filter = Option<String>;

/// The watchers of one process and the position the changes they were sent reached.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<State>,
    buffer: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The position of the last change handed out; `None` until the follower started.
    head: Option<u64>,
    next_id: u64,
    /// Watchers by filter: one account's (`Some`) or every account's (`None`).
    watchers: HashMap<Filter, HashMap<u64, Queue>>,
}

#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<Arc<Change>>,
    lagged: Arc<AtomicBool>,
}

/// A registered watcher: its queue, removed from the hub when this is dropped.
#[derive(Debug)]
pub(crate) struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    filter: Filter,
    pub(crate) receiver: mpsc::Receiver<Arc<Change>>,
    lagged: Arc<AtomicBool>,
}

/// Why a watcher could not subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotStarted;

impl Hub {
    /// A hub whose watchers may each have `buffer` changes unread.
    pub(crate) fn new(buffer: usize) -> Self {
        Self {
            state: Mutex::default(),
            buffer: buffer.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in the critical sections can leave the state half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The follower starts after `position`.
    pub(crate) fn start(&self, position: u64) {
        self.lock().head = Some(position);
    }

    /// The follower read past `position` without a change for anyone.
    pub(crate) fn advance(&self, position: u64) {
        self.lock().head = Some(position);
    }

    /// Queues `change` for every watcher it concerns.
    pub(crate) fn publish(&self, change: Change) {
        let change = Arc::new(change);
        let mut state = self.lock();
        state.head = Some(change.position);
        for filter in [Some(change.user_id.clone()), None] {
            let Some(queues) = state.watchers.get_mut(&filter) else {
                continue;
            };
            queues.retain(
                |_, queue| match queue.sender.try_send(Arc::clone(&change)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        queue.lagged.store(true, Ordering::SeqCst);
                        metrics::counter!(LAGGED_WATCHERS).increment(1);
                        false
                    }
                    // The watcher went away; its subscription is being dropped.
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            );
            if queues.is_empty() {
                state.watchers.remove(&filter);
            }
        }
    }

    /// Registers a watcher of `filter`: every change after the returned position will
    /// be queued for it.
    pub(crate) fn subscribe(
        self: &Arc<Self>,
        filter: Filter,
    ) -> Result<(Subscription, u64), NotStarted> {
        let (sender, receiver) = mpsc::channel(self.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        let head = state.head.ok_or(NotStarted)?;
        let id = state.next_id;
        state.next_id += 1;
        let queue = Queue {
            sender,
            lagged: Arc::clone(&lagged),
        };
        state
            .watchers
            .entry(filter.clone())
            .or_default()
            .insert(id, queue);
        drop(state);
        metrics::gauge!(ACTIVE_WATCHERS).increment(1.0);
        let subscription = Subscription {
            hub: Arc::clone(self),
            id,
            filter,
            receiver,
            lagged,
        };
        Ok((subscription, head))
    }

    /// How many watchers are registered.
    pub(crate) fn watchers(&self) -> usize {
        self.lock().watchers.values().map(HashMap::len).sum()
    }
}

impl Subscription {
    /// Whether the hub dropped this watcher for reading too slowly.
    pub(crate) fn lagged(&self) -> bool {
        self.lagged.load(Ordering::SeqCst)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        if let Some(queues) = state.watchers.get_mut(&self.filter) {
            queues.remove(&self.id);
            if queues.is_empty() {
                state.watchers.remove(&self.filter);
            }
        }
        drop(state);
        metrics::gauge!(ACTIVE_WATCHERS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use platform_proto::orders::v1 as pb;

    use super::*;

    fn change(position: u64, user: &str) -> Change {
        Change {
            position,
            user_id: user.to_owned(),
            message: pb::OrderChange::default(),
        }
    }

    #[test]
    fn changes_go_to_their_account_and_to_everyone_watchers_only() {
        let hub = Arc::new(Hub::new(8));
        assert_eq!(hub.subscribe(None).err(), Some(NotStarted));
        hub.start(10);
        let (mut ada, head) = hub.subscribe(Some("ada".to_owned())).expect("started");
        assert_eq!(head, 10);
        let (mut all, _) = hub.subscribe(None).expect("started");
        hub.publish(change(11, "bob"));
        hub.publish(change(12, "ada"));
        assert_eq!(ada.receiver.try_recv().map(|c| c.position), Ok(12));
        assert!(ada.receiver.try_recv().is_err());
        assert_eq!(all.receiver.try_recv().map(|c| c.position), Ok(11));
        assert_eq!(all.receiver.try_recv().map(|c| c.position), Ok(12));
        let (_late, head) = hub.subscribe(None).expect("started");
        assert_eq!(head, 12, "a later watcher starts after what was handed out");
        assert_eq!(hub.watchers(), 3);
        drop(ada);
        assert_eq!(hub.watchers(), 2);
    }

    #[test]
    fn a_full_queue_drops_its_watcher_and_no_other() {
        let hub = Arc::new(Hub::new(2));
        hub.start(0);
        let (mut slow, _) = hub.subscribe(None).expect("started");
        let (mut quick, _) = hub.subscribe(None).expect("started");
        for position in 1..=3 {
            hub.publish(change(position, "ada"));
            assert_eq!(quick.receiver.try_recv().map(|c| c.position), Ok(position));
        }
        assert!(slow.lagged());
        assert!(!quick.lagged());
        assert_eq!(hub.watchers(), 1);
        // The slow one still reads what it had queued, then its queue ends.
        assert_eq!(slow.receiver.try_recv().map(|c| c.position), Ok(1));
        assert_eq!(slow.receiver.try_recv().map(|c| c.position), Ok(2));
        assert_eq!(
            slow.receiver.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        );
    }
}
