//! The `healthcheck` probes against real servers on port 0: the gRPC health protocol
//! and the admin `/readyz`, each serving, not serving, and absent.

use std::net::SocketAddr;
use std::time::Duration;

use platform_kernel::Probe;
use platform_kernel::healthcheck::{Unhealthy, check};
use platform_server::Readiness;
use platform_shutdown::Shutdown;
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A port nobody listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn grpc_probe_follows_readiness() {
    let readiness = Readiness::new(&["a.v1.A"]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(readiness.health_service())
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown.wait_owned(),
            ),
    );
    let probe = Probe::Grpc {
        addr,
        service: "a.v1.A".to_owned(),
    };

    let not_yet = check(&probe, TIMEOUT).await.unwrap_err();
    assert!(matches!(not_yet, Unhealthy::NotServing(_)), "{not_yet}");
    readiness.set_ready(true).await;
    check(&probe, TIMEOUT).await.expect("serving");
    // Another service's name is not this one's health.
    let other = Probe::Grpc {
        addr,
        service: "b.v1.B".to_owned(),
    };
    assert!(check(&other, TIMEOUT).await.is_err());
    // The wildcard a container listens on means loopback.
    let wildcard = probe
        .clone()
        .at(SocketAddr::from(([0, 0, 0, 0], addr.port())));
    check(&wildcard, TIMEOUT)
        .await
        .expect("0.0.0.0 dials loopback");

    trigger.fire();
    server.await.unwrap().unwrap();
    let gone = check(&probe.at(closed_port().await), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(gone, Unhealthy::Connect(_)), "{gone}");
}

#[tokio::test]
async fn ready_probe_asks_the_admin_port() {
    let readiness = Readiness::new(&[]).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let server = tokio::spawn(platform_server::admin::serve(
        listener,
        readiness.clone(),
        None,
        shutdown,
    ));
    let probe = Probe::Ready { addr };

    let not_yet = check(&probe, TIMEOUT).await.unwrap_err();
    assert!(matches!(not_yet, Unhealthy::NotServing(_)), "{not_yet}");
    readiness.set_ready(true).await;
    check(&probe, TIMEOUT).await.expect("ready");
    readiness.start_draining().await;
    assert!(
        check(&probe, TIMEOUT).await.is_err(),
        "draining is not ready"
    );

    trigger.fire();
    server.await.unwrap().unwrap();
    let gone = check(
        &Probe::Ready {
            addr: closed_port().await,
        },
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(matches!(gone, Unhealthy::Connect(_)), "{gone}");
}
