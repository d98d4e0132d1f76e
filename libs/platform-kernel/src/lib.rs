//! The service kernel: what every binary of the platform shares, so that a service is
//! only what is its own.
//!
//! A service declares its unit type with [`service!`] (which names it after its crate)
//! and implements [`Service`] on it: its settings type, which gives the kernel the
//! sections it reads ([`KernelSettings`]), and an async [`Service::build`] that turns
//! settings into [`Parts`] (the gRPC routes and the authentication layer, or an HTTP
//! router; the readiness check of its dependencies; what to close after the drain).
//! Its `main` is then one call:
//!
//! ```ignore
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     platform_kernel::run::<users::Users>().await
//! }
//! ```
//!
//! and [`run`] does the rest, the same way for every binary: the command line
//! (`serve`, the default; `migrate`; `healthcheck`; the service's own subcommands;
//! `--config FILE` everywhere), settings (a bad value exits 2 naming the key, before
//! anything binds or logs), telemetry start and flush, the metrics recorder, the
//! public and admin ports, readiness, SIGTERM/SIGINT, and a drain bounded by the grace
//! period.
//!
//! # Layout
//!
//! - [`service`]: the [`Service`] trait, the [`KernelSettings`] its settings
//!   implement, and the [`Parts`] a service is built into.
//! - [`app`]: [`Application`], a service bound to its ports; tests build one from a
//!   settings value, bind port 0 and stop it with a trigger.
//! - [`cli`]: the command line and [`run`].
//! - [`healthcheck`]: the `healthcheck` subcommand, for container health checks.
//! - [`process`]: settings loading and exit codes.
//! - [`settings`]: [`ServiceSettings`], the sections every gRPC service has.

pub mod app;
pub mod cli;
pub mod healthcheck;
pub mod process;
pub mod service;
pub mod settings;

pub use app::Application;
pub use cli::{NoCommand, run};
pub use healthcheck::Probe;
pub use platform_telemetry::Component;
pub use service::{KernelSettings, Package, Parts, Sections, Service};
pub use settings::{Embedded, OwnSettings, ServiceSettings};

/// Declares a service's unit type, the one it implements [`Service`] on, with its
/// [`Package`] taken from the manifest of the calling crate: its package name and
/// version, and its description as the one line of `--help`.
///
/// ```ignore
/// platform_kernel::service! {
///     /// The users service, as the kernel runs it.
///     pub struct Users;
/// }
/// ```
#[macro_export]
macro_rules! service {
    ($(#[$attr:meta])* $vis:vis struct $name:ident;) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::Package for $name {
            const COMPONENT: $crate::Component =
                $crate::Component::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            const ABOUT: &'static str = env!("CARGO_PKG_DESCRIPTION");
        }
    };
}
