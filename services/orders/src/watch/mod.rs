//! Watching orders live (`WatchOrders`): the changes to orders as they are committed,
//! streamed to every watcher they concern, resumable from the last one a client saw.
//!
//! One follower per process reads the service's own events back in order
//! (`platform_events::tail`): from the `ORDERS` stream when a broker is configured, so
//! a watcher sees every replica's changes whichever replica it reached; from the
//! outbox table otherwise, woken by the store after each commit. The [`hub`] fans
//! each change out to the watchers of its account and to admins watching every
//! account, through a bounded queue per watcher.
//!
//! A watch that names `after_event_id` first reads the changes after that event from
//! the same log, up to the position the hub had reached when the watch subscribed, then
//! continues with the hub's queue: nothing is missed between the two, and nothing
//! the client already has is sent again (a change at or before the named event is
//! skipped, should this replica's follower be behind the one the client came from).
//!
//! A watch ends without an error when the process drains (so the gRPC server's
//! graceful drain does not wait for it), and with RESOURCE_EXHAUSTED when its client
//! reads too slowly; either way the client watches again from its last event id.

mod change;
pub mod hub;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use platform_events::{Followed, Follower, History, ResumeError, Source};
use platform_proto::orders::v1 as pb;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use uuid::Uuid;

use crate::domain::UserId;
use hub::{Hub, Subscription};

/// The changes of orders, as a gRPC server stream.
pub type ChangeStream = Pin<Box<dyn Stream<Item = Result<pb::OrderChange, Status>> + Send>>;

/// How long a new watch waits for the follower to start (just after the process
/// started, or while the broker is away) before it is refused as UNAVAILABLE.
const START_WAIT: Duration = Duration::from_secs(3);

/// Why a watch cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The follower has not started: the broker has not answered yet.
    #[error("order changes cannot be watched right now")]
    NotStarted,
    /// The process is shutting down.
    #[error("the server is shutting down")]
    Draining,
    /// `after_event_id` names no change.
    #[error("after_event_id names no change")]
    Unknown,
    /// `after_event_id` names a change no longer kept.
    #[error("the change after_event_id names is no longer kept")]
    Expired,
    /// The log could not be read.
    #[error("reading past changes failed: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<ResumeError> for WatchError {
    fn from(error: ResumeError) -> Self {
        match error {
            ResumeError::Unknown => Self::Unknown,
            ResumeError::Expired => Self::Expired,
            ResumeError::Unavailable(source) => Self::Unavailable(source),
        }
    }
}

/// The watching of one process: its hub, the log it follows, and the signal that
/// ends every watch when the process drains.
#[derive(Debug, Clone)]
pub struct Watch {
    hub: Arc<Hub>,
    source: Source,
    draining: CancellationToken,
}

impl Watch {
    /// Watching over `source`, each watcher allowed `buffer` unread changes.
    pub fn new(source: Source, buffer: usize) -> Self {
        Self {
            hub: Arc::new(Hub::new(buffer)),
            source,
            draining: CancellationToken::new(),
        }
    }

    /// Starts the follower that feeds the hub.
    pub fn follow(&self) -> Follower {
        let hub = Arc::clone(&self.hub);
        Follower::start(self.source.clone(), move |followed| match followed {
            Followed::Start(position) => hub.start(position),
            Followed::Record(record) => match change::decode(&record) {
                Some(change) => hub.publish(change),
                // Not an order change: the position still moves on.
                None => hub.advance(record.position),
            },
        })
    }

    /// Ends every watch (without an error) and refuses new ones: the process drains.
    pub fn close(&self) {
        self.draining.cancel();
    }

    /// How many watchers this process serves now.
    pub fn watchers(&self) -> usize {
        self.hub.watchers()
    }

    /// A transaction that wrote events has committed: without a broker, the follower
    /// reads them now rather than at its next poll.
    pub fn committed(&self) {
        self.source.committed();
    }

    /// A watch of `filter`'s orders (every account's for `None`), after the change
    /// `after` when given.
    pub async fn open(
        &self,
        filter: Option<UserId>,
        after: Option<Uuid>,
    ) -> Result<ChangeStream, WatchError> {
        if self.draining.is_cancelled() {
            return Err(WatchError::Draining);
        }
        let filter = filter.map(|user| user.to_string());
        let (subscription, head) = self.subscribe(filter.clone()).await?;
        let (history, seen) = match after {
            Some(event) => {
                let history = self.source.resume(event, head).await?;
                let seen = history.position();
                (Some(history), seen)
            }
            None => (None, head),
        };
        let watching = Watching {
            filter,
            subscription,
            history,
            seen,
            draining: self.draining.clone(),
            finished: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(watching, step)))
    }

    async fn subscribe(&self, filter: hub::Filter) -> Result<(Subscription, u64), WatchError> {
        let started = async {
            loop {
                match self.hub.subscribe(filter.clone()) {
                    Ok(subscribed) => return subscribed,
                    Err(hub::NotStarted) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        };
        tokio::select! {
            subscribed = tokio::time::timeout(START_WAIT, started) => {
                subscribed.map_err(|_| WatchError::NotStarted)
            }
            () = self.draining.cancelled() => Err(WatchError::Draining),
        }
    }
}

/// One watch in progress: its past changes first (when resuming), then its queue.
struct Watching {
    subscription: Subscription,
    filter: hub::Filter,
    history: Option<History>,
    /// The position of the last change sent (or of the resumed event): a queued change
    /// at or before it is one the client has.
    seen: u64,
    draining: CancellationToken,
    finished: bool,
}

type Step = Option<(Result<pb::OrderChange, Status>, Watching)>;

async fn step(mut watching: Watching) -> Step {
    loop {
        if watching.finished {
            return None;
        }
        if let Some(history) = watching.history.as_mut() {
            let next = tokio::select! {
                biased;
                () = watching.draining.cancelled() => return None,
                next = history.next() => next,
            };
            match next {
                Some(Ok(record)) => {
                    watching.seen = watching.seen.max(record.position);
                    let change = change::decode(&record).filter(|change| {
                        watching
                            .filter
                            .as_ref()
                            .is_none_or(|user| *user == change.user_id)
                    });
                    if let Some(change) = change {
                        return Some((Ok(change.message), watching));
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "a watch could not read past changes");
                    watching.finished = true;
                    let status = Status::unavailable(
                        "past changes could not be read; watch again with after_event_id \
                         set to the last event_id received",
                    );
                    return Some((Err(status), watching));
                }
                None => watching.history = None,
            }
            continue;
        }
        let next = tokio::select! {
            biased;
            () = watching.draining.cancelled() => return None,
            next = watching.subscription.receiver.recv() => next,
        };
        match next {
            Some(change) if change.position <= watching.seen => {}
            Some(change) => {
                watching.seen = change.position;
                return Some((Ok(change.message.clone()), watching));
            }
            None if watching.subscription.lagged() => {
                watching.finished = true;
                let status = Status::resource_exhausted(
                    "this watch fell behind: too many changes were waiting to be read; \
                     watch again with after_event_id set to the last event_id received",
                );
                return Some((Err(status), watching));
            }
            None => return None,
        }
    }
}
