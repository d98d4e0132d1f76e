//! The command line, and the [`Config`] it becomes.
//!
//! Every value is checked while parsing, so a bad flag stops the program (exit code
//! 2, the flag named) before any request is sent.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// What a run does. Tests build it directly; the binary gets it from [`Cli`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Journeys started per second, whatever the latency.
    pub rate: f64,
    /// How long journeys keep arriving; `None`: until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// Orders each journey places (at least 1).
    pub orders: u32,
    /// Journeys running at once; an arrival beyond it is dropped and counted.
    pub max_in_flight: usize,
    /// Bound of one request, answer included.
    pub timeout: Duration,
    /// Above this share of failed requests the run fails.
    pub max_error_ratio: f64,
    /// Print a progress line on stderr every second.
    pub progress: bool,
}

impl Config {
    /// A config for `url` with the command line's defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            rate: 2.0,
            duration: None,
            orders: 2,
            max_in_flight: 1000,
            timeout: Duration::from_secs(10),
            max_error_ratio: 0.01,
            progress: false,
        }
    }
}

/// Drives user journeys (sign up, sign in, refresh, orders: create, list, get,
/// cancel) through the gateway's HTTP API at a fixed arrival rate, and reports
/// per-route latency and answers.
///
/// Exit code: 0 when the share of failed requests is at most --max-error-ratio,
/// 1 when it is above (or nothing was measured), 2 for bad arguments or an
/// unwritable --json file.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Cli {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_parser = parse_url)]
    pub url: String,

    /// Journeys started per second (open model: on schedule, however slow the answers).
    #[arg(long, default_value = "2", value_parser = parse_rate)]
    pub rate: f64,

    /// How long journeys keep arriving (`30s`, `500ms`, `2m`, `1h`); without it, until
    /// Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Orders each journey places (1 to 100).
    #[arg(long, default_value = "2", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub orders: u32,

    /// Journeys in flight at most; a journey due while this many run is dropped
    /// (counted, and counted as an error), never queued.
    #[arg(long, default_value = "1000", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,

    /// Bound of one request, answer included.
    #[arg(long, default_value = "10s", value_parser = parse_positive_duration)]
    pub timeout: Duration,

    /// Highest share of failed requests (non-2xx answers, timeouts, dropped and
    /// unfinished journeys) for exit code 0.
    #[arg(long, default_value = "0.01", value_parser = parse_ratio)]
    pub max_error_ratio: f64,

    /// Also write the summary as JSON to this file (`-`: stdout, the table then goes
    /// to stderr).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
}

impl Cli {
    /// The run it asks for.
    pub fn config(&self) -> Config {
        Config {
            url: self.url.clone(),
            rate: self.rate,
            duration: self.duration,
            orders: self.orders,
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(usize::MAX),
            timeout: self.timeout,
            max_error_ratio: self.max_error_ratio,
            progress: !self.quiet,
        }
    }
}

fn parse_url(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#']) {
        return Err("must be a base URL: scheme, host and optional port, no path".to_owned());
    }
    Ok(trimmed.to_owned())
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value
        .parse()
        .map_err(|_| "must be a number of journeys per second".to_owned())?;
    if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 {
        Ok(rate)
    } else {
        Err("must be above 0 and at most 100000".to_owned())
    }
}

fn parse_ratio(value: &str) -> Result<f64, String> {
    let ratio: f64 = value
        .parse()
        .map_err(|_| "must be a number from 0 to 1".to_owned())?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err("must be from 0 to 1 (0.01 is 1 %)".to_owned())
    }
}

/// `500ms`, `30s`, `2m`, `1h`, or a number of seconds (`1.5`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| "must be a number with a unit: 500ms, 30s, 2m, 1h".to_owned())?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit {unit:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| "is out of range".to_owned())
}

fn parse_positive_duration(value: &str) -> Result<Duration, String> {
    let duration = parse_duration(value)?;
    if duration.is_zero() {
        return Err("must be longer than 0".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_positive_duration("0s").is_err());
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        let refused = |args: &[&str]| {
            let error = Cli::try_parse_from([&["loadgen"], args].concat())
                .expect_err("refused")
                .to_string();
            assert!(error.contains(args[0]), "{error}");
        };
        refused(&["--rate", "0"]);
        refused(&["--rate", "fast"]);
        refused(&["--max-error-ratio", "5"]);
        refused(&["--orders", "0"]);
        refused(&["--url", "127.0.0.1:8080"]);
        refused(&["--url", "http://gw/v1"]);
        refused(&["--duration", "forever"]);
        let cli = Cli::try_parse_from(["loadgen", "--url", "http://gw:8080/", "--rate", "2.5"])
            .expect("accepted");
        assert_eq!(cli.config().url, "http://gw:8080");
        assert!((cli.config().rate - 2.5).abs() < f64::EPSILON);
    }
}
