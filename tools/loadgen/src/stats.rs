//! What a run measured: per-route latency histograms and answer counts, journey
//! counts, and a one-second window for the progress line.
//!
//! Every journey task records into one [`Recorder`] behind a mutex: a record is a
//! histogram increment and two map updates, far cheaper than the HTTP request it
//! describes, so the lock is never what limits the rate.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, from 1 µs up to one hour (longer ones are
/// recorded as one hour), to three significant digits.
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A route of the gateway that journeys call, named by its template so that every
/// order id lands in one histogram; and the changes a journey's watch delivers.
///
/// A journey step that calls a new route adds a variant here (and to [`Route::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// `POST /v1/users`
    SignUp,
    /// `POST /v1/auth/token`
    SignIn,
    /// `POST /v1/auth/refresh`
    Refresh,
    /// `GET /v1/orders:watch`, until the stream is open (its response headers).
    WatchOrders,
    /// `POST /v1/orders`
    CreateOrder,
    /// `GET /v1/orders`
    ListOrders,
    /// `GET /v1/orders/{id}`
    GetOrder,
    /// `POST /v1/orders/{id}:cancel`
    CancelOrder,
    /// Each change a journey made (an order placed, an order cancelled) arriving on
    /// its watch, from when the change's request was sent: "requests" are changes.
    WatchedChange,
}

impl Route {
    /// Every route, in journey order (the order of the summary's rows).
    pub const ALL: [Route; 9] = [
        Route::SignUp,
        Route::SignIn,
        Route::Refresh,
        Route::WatchOrders,
        Route::CreateOrder,
        Route::ListOrders,
        Route::GetOrder,
        Route::CancelOrder,
        Route::WatchedChange,
    ];

    /// Method and path template, as the summary shows them.
    pub fn label(self) -> &'static str {
        match self {
            Route::SignUp => "POST /v1/users",
            Route::SignIn => "POST /v1/auth/token",
            Route::Refresh => "POST /v1/auth/refresh",
            Route::CreateOrder => "POST /v1/orders",
            Route::ListOrders => "GET /v1/orders",
            Route::GetOrder => "GET /v1/orders/{id}",
            Route::CancelOrder => "POST /v1/orders/{id}:cancel",
            Route::WatchOrders => "GET /v1/orders:watch",
            Route::WatchedChange => "watched order changes",
        }
    }
}

/// How one request ended, as counted per route: an HTTP status, or the reason no
/// usable answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The gateway answered with this status.
    Status(u16),
    /// No complete answer within `--timeout`.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Another transport failure (connection reset, malformed HTTP).
    Transport,
    /// A success status whose body was not the JSON the journey needs next.
    BadBody,
    /// A change arrived on the journey's watch.
    Watched,
    /// A change never arrived on the journey's watch within `--timeout` of the
    /// journey's last step.
    Missing,
}

impl Answer {
    /// The key the summary counts it under: `"200"`, `"timeout"`, ...
    pub fn key(self) -> String {
        match self {
            Answer::Status(code) => code.to_string(),
            Answer::Timeout => "timeout".to_owned(),
            Answer::Connect => "connect".to_owned(),
            Answer::Transport => "transport".to_owned(),
            Answer::BadBody => "bad-body".to_owned(),
            Answer::Watched => "watched".to_owned(),
            Answer::Missing => "missing".to_owned(),
        }
    }
}

/// What the journey made of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// What the step expects.
    Ok,
    /// Counted against the error ratio.
    Error,
    /// The step does not apply to this system (a route it does not serve); neither a
    /// success nor an error.
    Skipped,
}

/// Figures of one route.
#[derive(Debug)]
pub(crate) struct RouteStats {
    pub(crate) latency: Histogram<u64>,
    pub(crate) answers: BTreeMap<String, u64>,
    pub(crate) errors: u64,
    pub(crate) skipped: u64,
}

/// Journeys by what became of them.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JourneyCounts {
    /// Arrivals the schedule produced.
    pub(crate) scheduled: u64,
    /// Arrivals turned away because `--max-in-flight` journeys were running.
    pub(crate) dropped: u64,
    /// Arrivals that started.
    pub(crate) started: u64,
    /// Journeys whose every step answered as expected (skipped steps allowed).
    pub(crate) completed: u64,
    /// Journeys stopped by a step that failed.
    pub(crate) failed: u64,
}

/// The progress line's figures since the previous line.
#[derive(Debug)]
pub(crate) struct Window {
    pub(crate) latency: Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) started: u64,
    pub(crate) dropped: u64,
}

#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) routes: BTreeMap<Route, RouteStats>,
    pub(crate) journeys: JourneyCounts,
    pub(crate) window: Window,
    /// Totals since the start, for the progress line.
    pub(crate) requests: u64,
    pub(crate) errors: u64,
}

/// Shared by the scheduler and every journey task.
#[derive(Debug)]
pub struct Recorder {
    figures: Mutex<Figures>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, SIGNIFICANT_DIGITS)
        .expect("1 µs to 1 h at 3 significant digits are valid, constant bounds")
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_MICROS)
}

impl Default for Recorder {
    fn default() -> Self {
        let routes = Route::ALL
            .into_iter()
            .map(|route| {
                let stats = RouteStats {
                    latency: histogram(),
                    answers: BTreeMap::new(),
                    errors: 0,
                    skipped: 0,
                };
                (route, stats)
            })
            .collect();
        Self {
            figures: Mutex::new(Figures {
                routes,
                journeys: JourneyCounts::default(),
                window: Window {
                    latency: histogram(),
                    requests: 0,
                    errors: 0,
                    started: 0,
                    dropped: 0,
                },
                requests: 0,
                errors: 0,
            }),
        }
    }
}

impl Recorder {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Figures> {
        // A panic while holding the lock leaves counters, not broken invariants:
        // keep counting.
        self.figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One request of `route`, `latency` after its intended start.
    pub fn request(&self, route: Route, answer: Answer, verdict: Verdict, latency: Duration) {
        let latency = micros(latency);
        let mut figures = self.lock();
        let figures = &mut *figures;
        figures.requests += 1;
        figures.window.requests += 1;
        figures.window.latency.saturating_record(latency);
        let is_error = verdict == Verdict::Error;
        if is_error {
            figures.errors += 1;
            figures.window.errors += 1;
        }
        if let Some(stats) = figures.routes.get_mut(&route) {
            stats.latency.saturating_record(latency);
            *stats.answers.entry(answer.key()).or_default() += 1;
            match verdict {
                Verdict::Ok => {}
                Verdict::Error => stats.errors += 1,
                Verdict::Skipped => stats.skipped += 1,
            }
        }
    }

    /// A step of `route` that was not sent, because the system showed it lacks it.
    pub fn skipped_unsent(&self, route: Route) {
        if let Some(stats) = self.lock().routes.get_mut(&route) {
            stats.skipped += 1;
        }
    }

    pub(crate) fn scheduled(&self, started: bool) {
        let mut figures = self.lock();
        figures.journeys.scheduled += 1;
        if started {
            figures.journeys.started += 1;
            figures.window.started += 1;
        } else {
            figures.journeys.dropped += 1;
            figures.window.dropped += 1;
        }
    }

    pub(crate) fn journey_ended(&self, completed: bool) {
        let mut figures = self.lock();
        if completed {
            figures.journeys.completed += 1;
        } else {
            figures.journeys.failed += 1;
        }
    }

    /// The window's figures, and a fresh window.
    pub(crate) fn take_window(&self) -> Window {
        let mut figures = self.lock();
        let fresh = Window {
            latency: histogram(),
            requests: 0,
            errors: 0,
            started: 0,
            dropped: 0,
        };
        std::mem::replace(&mut figures.window, fresh)
    }
}
