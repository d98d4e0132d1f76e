//! Benchmark: the same RPC through the gateway (HTTP/JSON) and directly over gRPC,
//! interleaved in one run so machine noise hits both alike; reports throughput and
//! p50/p99 latency, and their ratios.
//!
//! ```text
//! cargo run --release -p system-tests --bin gateway_bench [-- REQUESTS CONCURRENCY ROUNDS]
//! ```
//!
//! By default it starts the whole system in this process. To measure running
//! binaries instead (for example the release binaries of `make run`), set
//! `BENCH_GATEWAY_URL=http://127.0.0.1:8080` and `BENCH_USERS_ADDR=http://127.0.0.1:50051`.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a command-line benchmark"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Copy)]
struct Stats {
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(index).copied().unwrap_or_default()
    };
    Stats {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Runs `requests` calls of `call` with at most `concurrency` in flight.
async fn drive<F, Fut>(requests: usize, concurrency: usize, call: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let permits = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let permit = Arc::clone(&permits)
            .acquire_owned()
            .await
            .expect("semaphore open");
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = call().await;
            drop(permit);
            assert!(ok, "a benchmark call failed");
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.push(task.await.expect("task ran"));
    }
    stats(latencies, started.elapsed())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(4000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let rounds = args.get(2).copied().unwrap_or(3);

    let external = std::env::var("BENCH_GATEWAY_URL")
        .ok()
        .zip(std::env::var("BENCH_USERS_ADDR").ok());
    let (system, gateway_url, users_addr) = match external {
        Some((gateway, users)) => (None, gateway, users),
        None => {
            let system = system_tests::System::start().await;
            let gateway = system.url("");
            let users = format!(
                "http://{}",
                system.users.as_ref().expect("users running").addr
            );
            (Some(system), gateway, users)
        }
    };

    // One account to read back, through both paths.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let email = format!("bench-{}@example.com", uuid_like());
    let created: serde_json::Value = http
        .post(format!("{gateway_url}/v1/users"))
        .json(&serde_json::json!({"email": email, "displayName": "Bench", "password": system_tests::PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .expect("sign-up answered with an id")
        .to_owned();
    let token: serde_json::Value = http
        .post(format!("{gateway_url}/v1/auth/token"))
        .json(&serde_json::json!({"email": email, "password": system_tests::PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = token["accessToken"].as_str().expect("a token").to_owned();
    let channel = tonic::transport::Endpoint::from_shared(users_addr)?
        .connect()
        .await?;

    let via_gateway = {
        let http = http.clone();
        let url = format!("{gateway_url}/v1/users/{id}");
        let bearer = format!("Bearer {token}");
        move || {
            let request = http.get(&url).header("authorization", &bearer);
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        }
    };
    let direct = {
        let client = UserServiceClient::new(channel);
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
        move || {
            let mut client = client.clone();
            let mut request = tonic::Request::new(pb::GetUserRequest { id: id.clone() });
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            async move { client.get_user(request).await.is_ok() }
        }
    };

    println!("GetUser: {requests} requests, {concurrency} in flight, {rounds} interleaved rounds");
    // Warm up connections, caches and the allocator.
    drive(requests / 10 + 1, concurrency, via_gateway.clone()).await;
    drive(requests / 10 + 1, concurrency, direct.clone()).await;

    let (mut g_tp, mut g_50, mut g_99, mut d_tp, mut d_50, mut d_99) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for round in 1..=rounds {
        let d = drive(requests, concurrency, direct.clone()).await;
        let g = drive(requests, concurrency, via_gateway.clone()).await;
        println!(
            "round {round}: direct {:>8.0} req/s p50 {:>7.2?} p99 {:>7.2?} | gateway {:>8.0} req/s p50 {:>7.2?} p99 {:>7.2?}",
            d.throughput, d.p50, d.p99, g.throughput, g.p50, g.p99
        );
        d_tp.push(d.throughput);
        d_50.push(d.p50.as_secs_f64());
        d_99.push(d.p99.as_secs_f64());
        g_tp.push(g.throughput);
        g_50.push(g.p50.as_secs_f64());
        g_99.push(g.p99.as_secs_f64());
    }
    let (gt, dt) = (median(&mut g_tp), median(&mut d_tp));
    let (g5, d5) = (median(&mut g_50), median(&mut d_50));
    let (g9, d9) = (median(&mut g_99), median(&mut d_99));
    println!(
        "median direct : {dt:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        d5 * 1e3,
        d9 * 1e3
    );
    println!(
        "median gateway: {gt:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
        g5 * 1e3,
        g9 * 1e3
    );
    println!(
        "ratio gateway/direct: throughput {:.2}  p50 {:.2}  p99 {:.2}",
        gt / dt,
        g5 / d5,
        g9 / d9
    );
    if let Some(system) = system {
        system.stop().await;
    }
    Ok(())
}

/// A short unique suffix without pulling in a UUID crate here.
fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )
}
