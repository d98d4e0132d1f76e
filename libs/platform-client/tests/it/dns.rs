//! Names resolved through a real DNS server the test controls: replicas added to and
//! removed from the answer join and leave the balancer within the re-resolution
//! interval.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform_client::{ChannelOptions, Channels, Client, DnsServerResolver};
use platform_testing::dns::TestDns;
use tokio::net::TcpListener;

use crate::support::{answered_by, serve, serve_on, trace};

#[tokio::test]
async fn replicas_follow_what_the_dns_server_answers() {
    let (_spans, _tracing) = trace();
    let first = serve().await;
    let port = first.addr.port();
    let second_ip = Ipv4Addr::new(127, 0, 0, 2);
    let second = serve_on(TcpListener::bind((second_ip, port)).await.unwrap()).await;
    let IpAddr::V4(first_ip) = first.addr.ip() else {
        unreachable!("bound on 127.0.0.1")
    };
    let dns = TestDns::start("users.test", &[first_ip]).await.unwrap();

    let every = Duration::from_millis(100);
    let options = ChannelOptions {
        resolve_every: every,
        ..ChannelOptions::default()
    };
    let resolver = Arc::new(DnsServerResolver::new(dns.addr()).unwrap());
    let client = Channels::with_resolver(options, resolver)
        .client(&format!("http://users.test:{port}"), Duration::from_secs(5))
        .unwrap();
    let only_first = HashSet::from([first.addr.to_string()]);
    assert_eq!(answered_by(&client, 10).await, only_first);

    // A replica is added: it gets calls within a few intervals.
    dns.add(second_ip);
    let both = HashSet::from([first.addr.to_string(), second.addr.to_string()]);
    until_answered_by(&client, &both, every, "the added address never got a call").await;

    // One is removed: it stops getting calls.
    dns.remove(first_ip);
    let only_second = HashSet::from([second.addr.to_string()]);
    until_answered_by(
        &client,
        &only_second,
        every,
        "the removed address still gets calls",
    )
    .await;
}

/// Waits, for at most thirty re-resolution intervals of `every`, until calls are
/// answered by exactly `replicas`; fails with `why` otherwise.
async fn until_answered_by(
    client: &Client,
    replicas: &HashSet<String>,
    every: Duration,
    why: &str,
) {
    let deadline = Instant::now() + every * 30;
    while answered_by(client, 40).await != *replicas {
        assert!(Instant::now() < deadline, "{why}");
        tokio::time::sleep(every).await;
    }
}
