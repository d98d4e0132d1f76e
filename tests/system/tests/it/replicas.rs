//! Three users, three orders and two gateway replicas as processes, each on its own
//! loopback address, found by DNS names, under steady load: the load spreads, a
//! replica killed or restarted costs no client request, the rate limit holds across
//! gateways and outlives a Redis outage, and a replica added to DNS gets traffic.
//!
//! The figures are printed (`-- --nocapture`) and quoted in the README.

#![allow(
    clippy::print_stderr,
    reason = "the figures of the run are the test's report"
)]

use std::time::{Duration, Instant};

use platform_testing::wait;
use system_tests::replicas::{
    Caller, Cluster, Load, ORDERS_NAME, RATE_BURST, RATE_PER_SECOND, RESOLVE_EVERY_MS, Role, Size,
    Tally, USERS_NAME, hammer,
};

/// Requests a second the load sends, over both gateways.
const LOAD_PER_SECOND: u32 = 24;
/// Accounts the load acts as: each stays well under its own rate limit.
const CALLERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_load_and_survive_kills_restarts_and_redis_outages() {
    let started = Instant::now();
    let mut cluster = Cluster::start(Size {
        users: 3,
        orders: 3,
        gateways: 2,
    })
    .await;
    eprintln!(
        "[replicas] 3 users, 3 orders, 2 gateways ready in {:.1?}",
        started.elapsed()
    );

    let mut callers = Vec::new();
    for i in 0..CALLERS {
        callers.push(cluster.caller(&format!("load{i}@example.com")).await);
    }
    let load = Load::start(callers, cluster.gateway_urls(), LOAD_PER_SECOND);

    spread(&cluster, &load).await;
    kill_and_return(&mut cluster, &load, Role::Users, 0, USERS_NAME).await;
    kill_and_return(&mut cluster, &load, Role::Orders, 1, ORDERS_NAME).await;
    rolling_restart(&mut cluster, &load).await;
    rate_limit_across_gateways(&mut cluster, &load).await;
    added_replica(&mut cluster, &load).await;

    let total = load.stop().await;
    eprintln!(
        "[replicas] whole run: {} requests, {} failed, in {:.1?}",
        total.sent,
        total.failed,
        started.elapsed()
    );
    assert_no_failures("the whole run", &total);
}

fn assert_no_failures(phase: &str, tally: &Tally) {
    assert_eq!(
        tally.failed, 0,
        "{phase}: {} of {} requests failed: {:#?}",
        tally.failed, tally.sent, tally.failures
    );
}

/// Served API calls of every replica of `role`.
async fn served(cluster: &Cluster, role: Role) -> Vec<f64> {
    let mut counts = Vec::new();
    for replica in cluster.replicas(role) {
        counts.push(cluster.served(replica).await);
    }
    counts
}

/// Every replica of users and orders serves at least a third of its fair share.
async fn spread(cluster: &Cluster, load: &Load) {
    let before = load.tally();
    let (users0, orders0) = (
        served(cluster, Role::Users).await,
        served(cluster, Role::Orders).await,
    );
    // Enough calls for each replica's share to mean something.
    wait::until(
        "300 requests answered",
        Duration::from_secs(60),
        async || load.tally().since(&before).ok >= 300,
    )
    .await;
    let (users1, orders1) = (
        served(cluster, Role::Users).await,
        served(cluster, Role::Orders).await,
    );
    let tally = load.tally().since(&before);
    for (role, before, after) in [
        (Role::Users, users0, users1),
        (Role::Orders, orders0, orders1),
    ] {
        let calls: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let total: f64 = calls.iter().sum();
        let shares: Vec<String> = calls
            .iter()
            .map(|c| format!("{c} ({:.0} %)", 100.0 * c / total))
            .collect();
        eprintln!(
            "[replicas] spread: {role:?} calls per replica: {}",
            shares.join(", ")
        );
        let fair = total / calls.len() as f64;
        for (replica, calls) in cluster.replicas(role).iter().zip(&calls) {
            assert!(
                *calls >= fair / 3.0,
                "{} served {calls} of {total} calls: under a third of its fair share",
                replica.label()
            );
        }
    }
    eprintln!(
        "[replicas] spread: {} requests, {} failed",
        tally.sent, tally.failed
    );
    assert_no_failures("spread", &tally);
}

/// SIGKILL one replica under load: no client request fails, the dead endpoint is
/// ejected, and once started again on its address it serves again.
async fn kill_and_return(cluster: &mut Cluster, load: &Load, role: Role, index: usize, name: &str) {
    let before = load.tally();
    let ejections = cluster.ejections(name).await;
    let label = cluster.replicas(role)[index].label();

    let killed = Instant::now();
    match role {
        Role::Users => cluster.users[index].kill(),
        Role::Orders => cluster.orders[index].kill(),
        Role::Gateway => unreachable!("gateways are taken out of rotation, not killed"),
    }
    wait::until(
        &format!("{label} ejected by its callers"),
        Duration::from_secs(30),
        async || cluster.ejections(name).await > ejections,
    )
    .await;
    let to_eject = killed.elapsed();

    cluster.restart(role, index).await;
    let restarted = Instant::now();
    wait_serving(cluster, role, index, Duration::from_secs(45)).await;
    let to_readmit = restarted.elapsed();

    let tally = load.tally().since(&before);
    eprintln!(
        "[replicas] kill -9 {label}: ejected after {to_eject:.1?}, serving again {to_readmit:.1?} \
         after its restart was ready; {} requests, {} failed",
        tally.sent, tally.failed
    );
    assert_no_failures(&format!("kill -9 of {label}"), &tally);
}

/// Waits (bounded by `within`) until replica `index` of `role`, just restarted, has
/// served calls again.
async fn wait_serving(cluster: &Cluster, role: Role, index: usize, within: Duration) {
    let label = cluster.replicas(role)[index].label();
    wait::until(&format!("{label} serves again"), within, async || {
        cluster.served(&cluster.replicas(role)[index]).await > 0.0
    })
    .await;
}

/// SIGTERM, start again, wait ready (and, for users and orders, until it serves),
/// next: every replica of every service.
async fn rolling_restart(cluster: &mut Cluster, load: &Load) {
    let before = load.tally();
    let started = Instant::now();
    for role in [Role::Users, Role::Orders] {
        for index in 0..cluster.replicas(role).len() {
            match role {
                Role::Users => cluster.users[index].terminate().await,
                _ => cluster.orders[index].terminate().await,
            }
            cluster.restart(role, index).await;
            // The next replica goes only once this one takes calls again, so the
            // load crosses every step of the rollout.
            wait_serving(cluster, role, index, Duration::from_secs(30)).await;
        }
    }
    let urls = cluster.gateway_urls();
    for (index, url) in urls.iter().enumerate() {
        // A load balancer stops sending to a gateway before it is stopped.
        load.take_out(url).await;
        cluster.gateways[index].terminate().await;
        cluster.restart(Role::Gateway, index).await;
        load.put_back(url);
    }
    let tally = load.tally().since(&before);
    eprintln!(
        "[replicas] rolling restart of 8 replicas in {:.1?}: {} requests, {} failed",
        started.elapsed(),
        tally.sent,
        tally.failed
    );
    assert_no_failures("rolling restart", &tally);
}

/// Admitted at most the budget plus 10 %, with 429s, over both gateways at once.
fn assert_limited(phase: &str, admitted: u64, limited: u64, elapsed: Duration) {
    let budget = f64::from(RATE_BURST) + f64::from(RATE_PER_SECOND) * elapsed.as_secs_f64();
    eprintln!(
        "[replicas] {phase}: {admitted} admitted, {limited} limited in {elapsed:.1?} \
         (budget {budget:.0}: burst {RATE_BURST} + {RATE_PER_SECOND}/s)"
    );
    assert!(
        (admitted as f64) <= budget * 1.1,
        "{phase}: {admitted} admitted over both gateways, budget {budget:.0}"
    );
    assert!(limited > 0, "{phase}: nothing was limited");
}

/// One caller's limit holds across both gateways; with Redis gone requests are
/// served unlimited, and limiting resumes once it is back.
async fn rate_limit_across_gateways(cluster: &mut Cluster, load: &Load) {
    let before = load.tally();
    let gateways = cluster.gateway_urls();
    let http = reqwest::Client::new();

    let hammerer = cluster.caller("hammer1@example.com").await;
    let shared = hammer(&http, &gateways, &hammerer, 120, 6).await;
    assert_eq!(shared.other, 0, "only 200s and 429s");
    assert_limited(
        "shared limit",
        shared.admitted,
        shared.limited,
        shared.elapsed,
    );

    let errors = cluster.redis_errors().await;
    cluster.redis.stop();
    let unlimited = hammer(&http, &gateways, &fresh(cluster, "hammer2").await, 60, 6).await;
    eprintln!(
        "[replicas] redis stopped: {} admitted, {} limited, {} other",
        unlimited.admitted, unlimited.limited, unlimited.other
    );
    assert_eq!(
        (unlimited.admitted, unlimited.other),
        (60, 0),
        "with Redis gone every request is served"
    );
    assert!(
        cluster.redis_errors().await > errors,
        "the outage is counted"
    );

    cluster.redis.restart().await;
    let back = Instant::now();
    let again = fresh(cluster, "hammer3").await;
    wait::until(
        "limiting resumes once Redis is back",
        Duration::from_secs(30),
        async || hammer(&http, &gateways, &again, 30, 6).await.limited > 0,
    )
    .await;
    eprintln!(
        "[replicas] redis back: limiting again after {:.1?}",
        back.elapsed()
    );
    let tally = load.tally().since(&before);
    eprintln!(
        "[replicas] rate limits and Redis outage: load {} requests, {} failed",
        tally.sent, tally.failed
    );
    assert_no_failures("rate limits and the Redis outage", &tally);
}

async fn fresh(cluster: &Cluster, name: &str) -> Caller {
    cluster.caller(&format!("{name}@example.com")).await
}

/// A users replica started on a new address and added to the name gets traffic
/// within a few re-resolution intervals.
async fn added_replica(cluster: &mut Cluster, load: &Load) {
    let before = load.tally();
    let index = cluster.add_replica(Role::Users).await;
    let added = Instant::now();
    let label = cluster.users[index].label();
    wait::until(
        &format!("{label} gets traffic once in DNS"),
        Duration::from_secs(15),
        async || cluster.served(&cluster.users[index]).await > 0.0,
    )
    .await;
    let tally = load.tally().since(&before);
    eprintln!(
        "[replicas] {label} added to {USERS_NAME}: first call served after {:.1?} \
         (re-resolution every {RESOLVE_EVERY_MS} ms); {} requests, {} failed",
        added.elapsed(),
        tally.sent,
        tally.failed
    );
    assert_no_failures("replica added", &tally);
}
