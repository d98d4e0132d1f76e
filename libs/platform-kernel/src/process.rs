//! The edges of a process: settings are loaded first (a bad value exits 2 naming the
//! key, before anything binds or logs), and a failure exits 1 with its whole cause
//! chain on stderr.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use platform_config::Layered;

/// Exit code of a configuration error.
pub const EXIT_CONFIG: u8 = 2;

/// Loads settings of type `S`, or prints the error naming the key and returns the exit
/// code to stop with.
pub fn load_settings<S: Layered>(name: &str, file: Option<&Path>) -> Result<S, ExitCode> {
    S::load(file).map_err(|error| {
        #[allow(clippy::print_stderr, reason = "no logger before settings")]
        {
            eprintln!("{name}: {error}");
        }
        ExitCode::from(EXIT_CONFIG)
    })
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
