//! The orders service as the kernel runs it ([`Orders`]).
//!
//! It is ready while its database is reachable and migrated and it is not draining.
//! The users service being down does not make it unready: every replica would go
//! unready at once, for a fault no replica can fix. Calls that need users answer
//! UNAVAILABLE meanwhile, which metrics and alerts show per call.

use std::sync::Arc;

use anyhow::Context as _;
use platform_auth::AuthLayer;
use platform_db::{Database, redact_url};
use platform_events::{Consumer, Relay, Source, streams};
use platform_kernel::{NoCommand, Parts, Service};
use platform_proto::orders::v1::order_service_server::OrderServiceServer;

use crate::Orders;
use crate::accounts::Accounts;
use crate::api::OrdersApi;
use crate::reactions::{ACCOUNT_DELETIONS, AccountDeletions};
use crate::settings::Settings;
use crate::store::{self, MIGRATIONS};
use crate::watch::{Watch, hub};

impl Service for Orders {
    type Settings = Settings;
    type Command = NoCommand;

    /// Prepares the database pool and the users client.
    async fn build(settings: &Settings) -> anyhow::Result<Parts> {
        let database = Database::connect_lazy(&settings.database).context("database")?;
        let accounts =
            Accounts::new(&settings.users, &settings.client).context("users endpoint")?;
        let verifier = settings.auth.verification.verifier(accounts.key_source());
        let auth = AuthLayer::new(Arc::new(verifier));
        let client = settings.events_client().await?;
        // Watchers follow the stream every replica publishes to; without a broker, this
        // process's outbox.
        let source = match &client {
            Some(client) => Source::stream(client.clone(), streams::ORDERS, &settings.events),
            None => Source::outbox(database.clone(), &settings.events),
        };
        let watch = Watch::new(source, settings.watch.buffer);
        // Without a broker the outbox still fills; a relay started later sends it all.
        let relay = client.as_ref().map(|client| {
            let stream = streams::ORDERS;
            Relay::start(database.clone(), client.clone(), stream, &settings.events)
        });
        // Each commit with events wakes the relay and the follower, so a watcher sees
        // the change within milliseconds rather than a poll interval later.
        let store = {
            let (watch, relay) = (watch.clone(), relay.as_ref().map(Relay::waker));
            store::notifying(store::open(&database), move || {
                if let Some(relay) = &relay {
                    relay.wake();
                }
                watch.committed();
            })
        };
        describe_metrics();
        let api = OrdersApi::new(Arc::clone(&store), accounts, watch.clone());
        let follower = watch.follow();
        let mut parts = Parts::grpc(&settings.grpc, OrderServiceServer::new(api), auth)
            .on_drain(move || watch.close());
        if let (Some(client), Some(relay)) = (client, relay) {
            let reaction = Arc::new(AccountDeletions::new(store));
            let consumer = Consumer::start(client, ACCOUNT_DELETIONS, reaction, &settings.events);
            // Stopped after the drain and before the pool closes (stops run in order).
            parts = parts.on_stop(async move {
                consumer.stop().await;
                relay.stop().await;
            });
        }
        parts = parts.on_stop(follower.stop());
        tracing::info!(
            database = %redact_url(&settings.database.url),
            users.url = %settings.users.url,
            events = settings.events.enabled(),
            "orders service built"
        );
        Ok(parts.with_database(database, &settings.database, MIGRATIONS))
    }
}

/// `# HELP` of the service's own metrics.
fn describe_metrics() {
    metrics::describe_gauge!(
        hub::ACTIVE_WATCHERS,
        "WatchOrders streams this process serves now."
    );
    metrics::describe_counter!(
        hub::LAGGED_WATCHERS,
        "WatchOrders streams ended with RESOURCE_EXHAUSTED because their client read too slowly."
    );
    // Shown from the first scrape, before the first watch.
    metrics::gauge!(hub::ACTIVE_WATCHERS).increment(0.0);
    metrics::counter!(hub::LAGGED_WATCHERS).increment(0);
}
