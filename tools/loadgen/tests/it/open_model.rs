//! The open model: arrivals keep their schedule however slow the answers, latency
//! counts from the intended start, the in-flight cap drops instead of queueing, and
//! failures fail the run. And a system without the refresh and watch routes: those
//! steps are skipped, not failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use loadgen::Config;
use platform_shutdown::Shutdown;

/// A server that answers every request with 503 after `delay`, counting requests.
async fn slow_server(delay: Duration) -> (String, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let app = Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            StatusCode::SERVICE_UNAVAILABLE
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn config(url: &str, rate: f64, duration: Duration) -> Config {
    let mut config = Config::new(url);
    config.rate = rate;
    config.duration = Some(duration);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_system_gets_every_arrival_and_is_charged_for_its_slowness() {
    let (url, received) = slow_server(Duration::from_millis(500)).await;

    // 20 journeys/s for 1 s against 500 ms answers: a closed loop would send ~2.
    let summary = loadgen::run(
        &config(&url, 20.0, Duration::from_secs(1)),
        Shutdown::never(),
    )
    .await
    .unwrap();

    assert_eq!(received.load(Ordering::SeqCst), 20);
    assert_eq!(summary.journeys.scheduled, 20);
    assert_eq!(summary.journeys.started, 20);
    assert_eq!(summary.journeys.dropped, 0);
    let sign_up = summary.route("POST /v1/users").unwrap();
    assert_eq!(sign_up.requests, 20);
    assert_eq!(sign_up.answers.get("503"), Some(&20));
    let latency = sign_up.latency_ms.unwrap();
    assert!(latency.min >= 500.0, "{latency:?}");

    // Every journey ended at its first step: all of it failed, so the run did.
    assert_eq!(summary.journeys.failed, 20);
    assert_eq!(summary.requests.errors, 20);
    assert!((summary.error_ratio - 1.0).abs() < f64::EPSILON);
    assert!(!summary.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_over_the_in_flight_cap_are_dropped_and_counted_not_queued() {
    let (url, received) = slow_server(Duration::from_millis(800)).await;
    let mut config = config(&url, 20.0, Duration::from_millis(500));
    config.max_in_flight = 4;

    let summary = loadgen::run(&config, Shutdown::never()).await.unwrap();

    // 10 arrivals within 0.5 s; none of the first 4 has ended by then.
    assert_eq!(summary.journeys.scheduled, 10);
    assert_eq!(summary.journeys.started, 4);
    assert_eq!(summary.journeys.dropped, 6);
    assert_eq!(received.load(Ordering::SeqCst), 4);
    // Dropped arrivals count as failures: 10 of 10.
    assert!((summary.error_ratio - 1.0).abs() < f64::EPSILON);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_the_arrivals_and_the_journeys_in_flight_are_bounded_by_the_timeout() {
    let (url, received) = slow_server(Duration::from_secs(30)).await;
    let mut config = Config::new(&url);
    config.rate = 10.0;
    config.timeout = Duration::from_millis(300);
    let (trigger, shutdown) = Shutdown::new();
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(450)).await;
        trigger.fire();
    });

    let summary = loadgen::run(&config, shutdown).await.unwrap();
    stop.await.unwrap();

    // Arrivals at 0, 0.1, ..., 0.4 s, then the shutdown; each times out at 0.3 s.
    assert_eq!(summary.journeys.scheduled, 5);
    assert_eq!(received.load(Ordering::SeqCst), 5);
    let sign_up = summary.route("POST /v1/users").unwrap();
    assert_eq!(
        sign_up.answers.get("timeout").copied().unwrap_or(0),
        summary.journeys.failed
    );
    assert_eq!(summary.journeys.failed + summary.journeys.unfinished, 5);
    assert!(!summary.passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_that_are_not_served_are_skipped_and_the_journey_goes_on() {
    // Sign-up and sign-in (with a refresh token) answer; every other path is 404.
    let app = Router::new()
        .route("/v1/users", post(|| async { r#"{"id":"u-1"}"# }))
        .route(
            "/v1/auth/token",
            post(|| async { r#"{"accessToken":"a","refreshToken":"r"}"# }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let summary = loadgen::run(
        &config(&url, 10.0, Duration::from_millis(500)),
        Shutdown::never(),
    )
    .await
    .unwrap();

    let refresh = summary.route("POST /v1/auth/refresh").unwrap();
    assert_eq!(refresh.requests, 5);
    assert_eq!(refresh.skipped, 5);
    assert_eq!(refresh.errors, 0);
    assert_eq!(refresh.answers.get("404"), Some(&5));
    // So is the watch, and the changes it would have shown.
    let watch = summary.route("GET /v1/orders:watch").unwrap();
    assert_eq!((watch.requests, watch.skipped, watch.errors), (5, 5, 0));
    let watched = summary.route("watched order changes").unwrap();
    assert_eq!((watched.requests, watched.skipped), (0, 5));
    // The journeys went on to place an order, which this stand-in does not serve.
    let create = summary.route("POST /v1/orders").unwrap();
    assert_eq!((create.requests, create.errors), (5, 5));
    assert_eq!(summary.requests.errors, 5);
}
