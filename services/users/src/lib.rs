//! The users service: accounts, passwords, access tokens and the keys that sign them,
//! served as `users.v1.UserService` over gRPC.
//!
//! # Layout
//!
//! - [`app`]: how `platform-kernel` builds [`Users`] (declared here) from
//!   [`Settings`], [`Application`] being the service built and bound to its ports;
//!   and the operator command that creates admins.
//! - [`api`]: the gRPC service: parsing, authorization, calls into the store.
//! - [`domain`]: validated values (`Email`, `DisplayName`, `Password`, ...).
//! - [`events`]: the events it publishes (`UserDeleted`), written to the outbox by
//!   the store and relayed to NATS JetStream when `events.nats_url` is set.
//! - [`store`]: the `UserStore` and `SessionStore` traits and their PostgreSQL and
//!   SQLite implementations.
//! - [`password`]: Argon2id hashing on the blocking pool.
//! - [`sessions`]: refresh tokens (random, stored hashed, rotated in families) and the
//!   limit on failed sign-ins.
//! - [`keys`]: signing and verification keys, and the published JWK set.
//! - [`error`]: every failure, and its one mapping to a gRPC status.
//! - [`settings`]: the configuration, its defaults and its checks.

pub mod api;
pub mod app;
pub mod domain;
pub mod error;
pub mod events;
pub mod keys;
pub mod password;
pub mod sessions;
pub mod settings;
pub mod store;

pub use settings::Settings;

platform_kernel::service! {
    /// The users service, as the kernel runs it.
    pub struct Users;
}

/// The users service, built and bound to its ports.
pub type Application = platform_kernel::Application<Users>;
