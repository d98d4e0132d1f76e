//! The life of a component's process, the same for every binary: settings first (a bad
//! value exits 2 before anything binds or logs), then telemetry, then the component
//! until SIGTERM/SIGINT, then a span flush; a failure exits 1 with its cause on stderr.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

use platform_config::{ConfigError, Layered};
use platform_shutdown::Shutdown;
use platform_telemetry::{Component, LogSettings, TelemetryError};

/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError<E> {
    /// Telemetry could not start.
    #[error("starting telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// The component failed.
    #[error("{0}")]
    Run(E),
}

/// Loads settings of type `S`, or prints the error naming the key and returns the exit
/// code to stop with.
pub fn load_settings<S: Layered>(
    name: &str,
    file: Option<&std::path::Path>,
) -> Result<S, ExitCode> {
    S::load(file).map_err(|error: ConfigError| {
        #[allow(clippy::print_stderr, reason = "no logger before settings")]
        {
            eprintln!("{name}: {error}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Installs telemetry, runs `run` until the OS asks to stop, then flushes spans.
pub async fn serve<F, Fut, E>(
    component: Component,
    log: &LogSettings,
    run: F,
) -> Result<(), ServeError<E>>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let telemetry = platform_telemetry::init(component, log)?;
    let result = run(platform_shutdown::from_os_signals()).await;
    if let Err(error) = &result {
        tracing::error!(%error, component = component.name, "component failed");
    }
    telemetry.shutdown().await;
    result.map_err(ServeError::Run)
}

/// The exit code for `result`, printing a failure's whole cause chain to stderr.
pub fn exit<E: Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "the error must reach the operator even if logging failed"
            )]
            {
                eprintln!("{name}: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
