//! The orders service: the orders of signed-in users, served as
//! `orders.v1.OrderService` over gRPC.
//!
//! # Layout
//!
//! - [`app`]: how `platform-kernel` builds [`Orders`] (declared here) from
//!   [`Settings`]; [`Application`] is the service built and bound to its ports.
//! - [`api`]: the gRPC service: parsing, authorization, account checks, the store.
//! - [`accounts`]: the users service as orders sees it: account checks (cached), the
//!   token keys, its health.
//! - [`domain`]: validated values (`Items` with their checked total, `Sku`, ids).
//! - [`store`]: the `OrderStore` trait and its PostgreSQL and SQLite implementations.
//! - [`events`]: the events it publishes (`OrderCreated`, `OrderCancelled`), written
//!   to the outbox by the store and relayed to NATS JetStream when `events.nats_url`
//!   is set.
//! - [`reactions`]: what it does on other services' events (a deleted account's
//!   pending orders are cancelled).
//! - [`watch`]: `WatchOrders`: the changes to orders streamed live to their watchers,
//!   resumable from an event id, from the `ORDERS` stream (or the outbox without a
//!   broker).
//! - [`error`]: every failure, and its one mapping to a gRPC status.
//! - [`settings`]: the configuration, its defaults and its checks.

pub mod accounts;
pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod reactions;
pub mod settings;
pub mod store;
pub mod watch;

pub use settings::Settings;

platform_kernel::service! {
    /// The orders service, as the kernel runs it.
    pub struct Orders;
}

/// The orders service, built and bound to its ports.
pub type Application = platform_kernel::Application<Orders>;
