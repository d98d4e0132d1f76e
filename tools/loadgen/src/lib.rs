//! A load generator for the platform: user journeys through the gateway's HTTP API
//! at a fixed arrival rate.
//!
//! # The open model
//!
//! Journeys arrive on a schedule fixed before the run starts: journey `n` is due at
//! `start + n / rate`, and is spawned as its own task at that time whatever the
//! journeys before it are doing. A slow system therefore gets as many arrivals as a
//! fast one (the rate a user base produces does not drop because the service got
//! slow), and the latency of a journey's first request is measured from when it was
//! due, not from when the generator got round to it: no coordinated omission.
//! Journeys running at once are capped (`--max-in-flight`); an arrival over the cap
//! is dropped and counted as a failure, never queued to start late.
//!
//! # Layout
//!
//! - [`config`]: the command line and the [`Config`] it becomes;
//! - `journey`: the steps of one journey over HTTP;
//! - [`stats`]: per-route histograms and answer counts;
//! - [`summary`]: the end-of-run [`Summary`], as a table and as JSON;
//! - this file: the schedule, the progress line, and [`main`], the binary's body.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use platform_shutdown::Shutdown;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub mod config;
mod journey;
pub mod stats;
pub mod summary;

pub use config::{Cli, Config};
pub use summary::Summary;

use journey::Journeys;
use stats::Recorder;
use summary::RunFacts;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Runs journeys against `config.url` until `config.duration` has passed or
/// `shutdown` fires, waits (at most `config.timeout`) for the journeys in flight,
/// and sums up.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<Summary, Error> {
    let recorder = Arc::new(Recorder::default());
    let journeys = Arc::new(Journeys {
        http: journey::client(config.timeout, config.max_in_flight).map_err(Error::Client)?,
        base: config.url.trim_end_matches('/').to_owned(),
        recorder: Arc::clone(&recorder),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        orders: config.orders.max(1),
        timeout: config.timeout,
    });
    let slots = Arc::new(Semaphore::new(config.max_in_flight));
    let start = Instant::now();
    let progress = config.progress.then(|| {
        tokio::spawn(progress(
            Arc::clone(&recorder),
            Arc::clone(&slots),
            config.max_in_flight,
            start,
        ))
    });

    let mut tasks = JoinSet::new();
    let end = config.duration.map(|d| start + d);
    for n in 0u64.. {
        // From the start, not from the previous arrival: a late wake-up does not
        // shift the arrivals after it.
        let due = start + Duration::from_secs_f64(n as f64 / config.rate);
        if end.is_some_and(|end| due >= end) {
            break;
        }
        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            () = tokio::time::sleep_until(due) => {}
        }
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                recorder.scheduled(true);
                let journeys = Arc::clone(&journeys);
                tasks.spawn(async move {
                    let completed = journeys.run(n, due).await;
                    journeys.recorder.journey_ended(completed);
                    drop(slot);
                });
            }
            Err(_) => recorder.scheduled(false),
        }
        while tasks.try_join_next().is_some() {}
    }
    // Arrivals covered the whole duration unless a shutdown cut them short.
    let arrivals_ended = match end {
        Some(end) if !shutdown.is_started() => end,
        _ => Instant::now(),
    };

    // The journeys in flight may finish; a system that does not answer them within
    // one request timeout has them counted as unfinished.
    let drained = tokio::time::timeout(config.timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let unfinished = if drained.is_ok() {
        0
    } else {
        let left = tasks.len() as u64;
        tasks.shutdown().await;
        left
    };
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
        let mut stderr = std::io::stderr();
        if stderr.is_terminal() {
            let _ = writeln!(stderr);
        }
    }

    // The last journeys may end before the arrival window does.
    let arrival_secs = (arrivals_ended - start).as_secs_f64();
    let facts = RunFacts {
        url: journeys.base.clone(),
        target_rate: config.rate,
        arrival_secs,
        elapsed_secs: start.elapsed().as_secs_f64().max(arrival_secs),
        unfinished,
        max_error_ratio: config.max_error_ratio,
    };
    Ok(Summary::new(&recorder.lock(), facts))
}

/// Writes a progress line on stderr every second: over the last second, journeys
/// started and dropped, requests answered and failed, p50 and p99; journeys in
/// flight now. On a terminal the line rewrites itself.
async fn progress(recorder: Arc<Recorder>, slots: Arc<Semaphore>, max: usize, start: Instant) {
    let mut stderr = std::io::stderr();
    let (prefix, suffix) = if stderr.is_terminal() {
        ("\r\x1b[2K", "")
    } else {
        ("", "\n")
    };
    let mut ticks =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = start;
    loop {
        let now = ticks.tick().await;
        let window = recorder.take_window();
        let secs = (now - last).as_secs_f64().max(f64::EPSILON);
        last = now;
        let in_flight = max.saturating_sub(slots.available_permits());
        let ms = |q| window.latency.value_at_quantile(q) as f64 / 1000.0;
        let (p50, p99) = if window.latency.is_empty() {
            (0.0, 0.0)
        } else {
            (ms(0.5), ms(0.99))
        };
        let _ = write!(
            stderr,
            "{prefix}{:>5.0}s  journeys {:.1}/s  requests {:.1}/s  in flight {in_flight}  errors {}  dropped {}  p50 {p50:.1} ms  p99 {p99:.1} ms{suffix}",
            (now - start).as_secs_f64(),
            window.started as f64 / secs,
            window.requests as f64 / secs,
            window.errors,
            window.dropped,
        );
        let _ = stderr.flush();
    }
}

/// The binary's body: runs what `cli` asks, until its duration or SIGINT/SIGTERM,
/// prints the summary table (stdout; stderr when the JSON goes to stdout), writes
/// the JSON summary, and gives the exit code (0 passed, 1 failed, 2 could not run).
pub async fn main(cli: Cli) -> ExitCode {
    let config = cli.config();
    // Open the JSON file first: a typo in its path should cost nothing.
    let json_to_stdout = cli.json.as_deref() == Some(Path::new("-"));
    let mut json_file = match cli.json.as_deref().filter(|_| !json_to_stdout) {
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Some(file),
            Err(error) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "loadgen: cannot write {}: {error}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };

    let summary = match run(&config, platform_shutdown::from_os_signals()).await {
        Ok(summary) => summary,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "loadgen: {error}");
            return ExitCode::from(2);
        }
    };

    let table = format!("{summary}\n");
    let json = match serde_json::to_string_pretty(&summary) {
        Ok(json) => json + "\n",
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "loadgen: cannot serialise the summary: {error}"
            );
            return ExitCode::from(2);
        }
    };
    let written = if json_to_stdout {
        std::io::stderr()
            .write_all(table.as_bytes())
            .and_then(|()| std::io::stdout().write_all(json.as_bytes()))
    } else {
        std::io::stdout()
            .write_all(table.as_bytes())
            .and_then(|()| match &mut json_file {
                Some(file) => file.write_all(json.as_bytes()),
                None => Ok(()),
            })
    };
    if let Err(error) = written {
        let _ = writeln!(
            std::io::stderr(),
            "loadgen: cannot write the summary: {error}"
        );
        return ExitCode::from(2);
    }
    if summary.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
