//! The settings every gRPC service of the platform has ([`ServiceSettings`]), around
//! the ones that are its own, so a service declares, defaults and checks only those;
//! with the service's name and migrations beside them ([`OwnSettings`]), they give the
//! kernel its sections once for every gRPC service.
//!
//! The shared sections keep their keys (`grpc.addr`, `USERS__EVENTS__NATS_URL`): the
//! service's own sections are embedded with `#[serde(flatten)]` beside them, and
//! reached through `Deref` as if they were fields of the whole (`settings.auth`).

use std::ops::{Deref, DerefMut};

use platform_config::{ConfigError, Layered, require_positive};
use platform_db::{DatabaseSettings, Migrations};
use platform_events::EventsSettings;
use platform_server::faults::FaultSettings;
use platform_server::{AdminSettings, GrpcSettings};
use platform_telemetry::LogSettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{KernelSettings, Sections};

/// The sections a gRPC service adds to the shared ones, and which service they are for.
///
/// No `deny_unknown_fields` on the implementing type: serde cannot combine it with
/// `flatten`; [`ServiceSettings`] denies unknown keys for both.
pub trait OwnSettings:
    Default + Clone + PartialEq + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The gRPC service these settings configure, whose health `healthcheck` asks
    /// (its generated `SERVICE_NAME`).
    const GRPC_SERVICE: &'static str;
    /// The migrations of the service's database, which `migrate` applies.
    const MIGRATIONS: Migrations;
    /// The environment variable prefix, for example `USERS`.
    const ENV_PREFIX: &'static str;
    /// Dotted keys of list settings set from one comma-separated variable.
    const ENV_LISTS: &'static [&'static str] = &[];
    /// Where the embedded run listens and keeps its data.
    const EMBEDDED: Embedded;

    /// Rules of the service's own sections that their types do not express, checked
    /// after the shared ones; `settings` is the whole.
    fn validate(settings: &ServiceSettings<Self>) -> Result<(), ConfigError> {
        let _ = settings;
        Ok(())
    }
}

/// The defaults of the embedded run that differ between services.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// The gRPC port on loopback.
    pub grpc_port: u16,
    /// The admin port on loopback.
    pub admin_port: u16,
    /// The database URL.
    pub database_url: &'static str,
}

/// Every setting of a gRPC service: the shared sections, then its own (`T`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    bound(serialize = "T: OwnSettings", deserialize = "T: OwnSettings")
)]
pub struct ServiceSettings<T> {
    /// The gRPC server.
    pub grpc: GrpcSettings,
    /// The admin HTTP port.
    pub admin: AdminSettings,
    /// Where the service stores its data.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
    /// Faults injected on demand (off unless `faults.enabled`).
    pub faults: FaultSettings,
    /// Events: the outbox relay (and consumers) on NATS JetStream; off while
    /// `events.nats_url` is empty.
    pub events: EventsSettings,
    /// The service's own sections.
    #[serde(flatten)]
    pub own: T,
}

impl<T: OwnSettings> Default for ServiceSettings<T> {
    fn default() -> Self {
        let embedded = T::EMBEDDED;
        Self {
            grpc: GrpcSettings::new(([127, 0, 0, 1], embedded.grpc_port).into()),
            admin: AdminSettings {
                addr: ([127, 0, 0, 1], embedded.admin_port).into(),
            },
            database: DatabaseSettings::new(embedded.database_url),
            log: LogSettings::default(),
            faults: FaultSettings::default(),
            events: EventsSettings::default(),
            own: T::default(),
        }
    }
}

impl<T: OwnSettings> Layered for ServiceSettings<T> {
    const ENV_PREFIX: &'static str = T::ENV_PREFIX;
    const ENV_LISTS: &'static [&'static str] = T::ENV_LISTS;

    fn validate(&self) -> Result<(), ConfigError> {
        require_positive("grpc.concurrency_limit", self.grpc.concurrency_limit as u64)?;
        self.events.validate("events")?;
        T::validate(self)
    }
}

impl<T: OwnSettings> KernelSettings for ServiceSettings<T> {
    fn sections(&self) -> Sections<'_> {
        Sections::grpc(&self.log, &self.admin, &self.grpc, T::GRPC_SERVICE)
            .with_database(&self.database, T::MIGRATIONS)
            .with_faults(&self.faults)
    }
}

impl<T> ServiceSettings<T> {
    /// A connection to the events broker, or none when `events.nats_url` is empty.
    pub async fn events_client(
        &self,
    ) -> Result<Option<async_nats::Client>, platform_events::ConnectError> {
        if !self.events.enabled() {
            return Ok(None);
        }
        platform_events::connect(&self.events.nats_url)
            .await
            .map(Some)
    }
}

impl<T> Deref for ServiceSettings<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.own
    }
}

impl<T> DerefMut for ServiceSettings<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.own
    }
}
