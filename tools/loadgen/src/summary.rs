//! The end-of-run summary: one value, shown as a table for people and serialised as
//! JSON for jobs (`--json`).
//!
//! The error ratio counts what a user would have suffered: failed requests (any
//! answer but a 2xx, a timeout or a broken connection), plus journeys that never
//! got a request in because `--max-in-flight` were running (dropped) or were still
//! running when the run ended (unfinished), each counted as one failed request.
//! A skipped step (a route the system does not serve) is neither.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{Figures, Route};

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The gateway the journeys went to.
    pub url: String,
    /// Journeys per second asked for.
    pub target_rate: f64,
    /// Seconds during which journeys arrived.
    pub arrival_secs: f64,
    /// Seconds from the first arrival until the last journey ended or was given up.
    pub elapsed_secs: f64,
    /// What became of the journeys.
    pub journeys: Journeys,
    /// Requests over every route.
    pub requests: Requests,
    /// `(errors + dropped + unfinished) / (requests + dropped + unfinished)`.
    pub error_ratio: f64,
    /// The threshold of `--max-error-ratio`.
    pub max_error_ratio: f64,
    /// Whether requests were sent and the error ratio is at most the threshold: the
    /// exit code is 0 exactly when this is true.
    pub passed: bool,
    /// One entry per route, in journey order.
    pub routes: Vec<RouteSummary>,
}

/// Journeys by what became of them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Journeys {
    /// Arrivals the schedule produced: `target_rate` × `arrival_secs`.
    pub scheduled: u64,
    /// Arrivals that started a journey.
    pub started: u64,
    /// Started per second of arrivals.
    pub per_second: f64,
    /// Every step answered as expected (skipped steps allowed).
    pub completed: u64,
    /// Ended by a step that failed.
    pub failed: u64,
    /// Arrivals not started because `--max-in-flight` journeys were running.
    pub dropped: u64,
    /// Still running when the run gave up waiting (`--timeout` after the arrivals
    /// ended).
    pub unfinished: u64,
}

/// Requests over every route.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Requests {
    /// Requests that got an answer or failed (skipped steps that sent one included).
    pub total: u64,
    /// Requests per second over `elapsed_secs`.
    pub per_second: f64,
    /// Failed requests.
    pub errors: u64,
}

/// One route's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSummary {
    /// Method and path template, e.g. `GET /v1/orders/{id}`.
    pub route: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Steps skipped because the system does not serve the route (sent and answered
    /// 404, or not sent when its precondition was missing).
    pub skipped: u64,
    /// Answers by HTTP status, or `timeout`, `connect`, `transport`, `bad-body`.
    pub answers: BTreeMap<String, u64>,
    /// Latency from each request's intended start to its answer; absent without
    /// requests.
    pub latency_ms: Option<Latency>,
}

/// Latency percentiles of one route, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            min: ms(histogram.min()),
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        })
    }
}

/// What the run loop knows besides the recorded figures.
#[derive(Debug)]
pub(crate) struct RunFacts {
    pub(crate) url: String,
    pub(crate) target_rate: f64,
    pub(crate) arrival_secs: f64,
    pub(crate) elapsed_secs: f64,
    pub(crate) unfinished: u64,
    pub(crate) max_error_ratio: f64,
}

impl Summary {
    pub(crate) fn new(figures: &Figures, facts: RunFacts) -> Self {
        let counts = figures.journeys;
        let routes: Vec<RouteSummary> = Route::ALL
            .into_iter()
            .filter_map(|route| {
                let stats = figures.routes.get(&route)?;
                Some(RouteSummary {
                    route: route.label().to_owned(),
                    requests: stats.latency.len(),
                    errors: stats.errors,
                    skipped: stats.skipped,
                    answers: stats.answers.clone(),
                    latency_ms: Latency::of(&stats.latency),
                })
            })
            .collect();
        let total: u64 = routes.iter().map(|r| r.requests).sum();
        let errors: u64 = routes.iter().map(|r| r.errors).sum();
        let not_sent = counts.dropped + facts.unfinished;
        let error_ratio = ratio(errors + not_sent, total + not_sent);
        Self {
            url: facts.url,
            target_rate: facts.target_rate,
            arrival_secs: facts.arrival_secs,
            elapsed_secs: facts.elapsed_secs,
            journeys: Journeys {
                scheduled: counts.scheduled,
                started: counts.started,
                per_second: per_second(counts.started, facts.arrival_secs),
                completed: counts.completed,
                failed: counts.failed,
                dropped: counts.dropped,
                unfinished: facts.unfinished,
            },
            requests: Requests {
                total,
                per_second: per_second(total, facts.elapsed_secs),
                errors,
            },
            error_ratio,
            max_error_ratio: facts.max_error_ratio,
            passed: total > 0 && error_ratio <= facts.max_error_ratio,
            routes,
        }
    }

    /// The route named `label` (`Route::label`), if measured.
    pub fn route(&self, label: &str) -> Option<&RouteSummary> {
        self.routes.iter().find(|r| r.route == label)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn per_second(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let j = &self.journeys;
        writeln!(
            f,
            "{}: {:.1} journeys/s asked, {:.1} started, for {:.1} s",
            self.url, self.target_rate, j.per_second, self.arrival_secs
        )?;
        writeln!(
            f,
            "journeys: {} scheduled, {} started, {} completed, {} failed, {} dropped, {} unfinished",
            j.scheduled, j.started, j.completed, j.failed, j.dropped, j.unfinished
        )?;
        writeln!(
            f,
            "requests: {} ({:.1}/s over {:.1} s), {} failed",
            self.requests.total, self.requests.per_second, self.elapsed_secs, self.requests.errors
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<28} {:>8} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  answers",
            "route",
            "requests",
            "errors",
            "skipped",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        )?;
        for route in &self.routes {
            write!(
                f,
                "{:<28} {:>8} {:>7} {:>7}",
                route.route, route.requests, route.errors, route.skipped
            )?;
            match route.latency_ms {
                Some(l) => write!(
                    f,
                    " {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                    l.p50, l.p90, l.p99, l.p999, l.max
                )?,
                None => write!(f, " {:>9} {:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-", "-")?,
            }
            let answers: Vec<String> = route
                .answers
                .iter()
                .map(|(answer, count)| format!("{answer}×{count}"))
                .collect();
            writeln!(f, "  {}", answers.join(" "))?;
        }
        writeln!(f)?;
        write!(
            f,
            "error ratio {:.3} % (max {:.3} %): {}",
            self.error_ratio * 100.0,
            self.max_error_ratio * 100.0,
            if self.passed {
                "PASS"
            } else if self.requests.total == 0 {
                "FAIL (nothing measured)"
            } else {
                "FAIL"
            }
        )
    }
}
