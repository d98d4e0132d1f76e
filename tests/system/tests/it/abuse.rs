//! Slow and abusive clients at the edge: half-sent headers, a body that never
//! finishes, more connections than the gateway serves at once.

use std::time::Duration;

use system_tests::{Options, System};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the gateway sends on `stream` until it closes it (or resets it), waiting at
/// most 5 s.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway closes the connection, it does not hold it");
    if let Err(error) = read {
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn strict() -> Options {
    Options {
        gateway: Some(|g| {
            g.http.header_read_timeout_ms = 300;
            g.http.body_read_timeout_ms = 300;
            g.http.max_connections = 3;
        }),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_client_that_sends_half_its_headers_is_cut_off() {
    let system = System::start_with(strict()).await;
    let mut slow = TcpStream::connect(system.gateway_addr()).await.unwrap();
    slow.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn a_body_that_never_finishes_is_refused() {
    let system = System::start_with(strict()).await;
    let mut slow = TcpStream::connect(system.gateway_addr()).await.unwrap();
    slow.write_all(
        b"POST /v1/auth/token HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_others_served() {
    let system = System::start_with(strict()).await;
    let request = b"GET /openapi.json HTTP/1.1\r\nHost: gateway\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut connection = TcpStream::connect(system.gateway_addr()).await.unwrap();
        connection.write_all(request).await.unwrap();
        let mut first = [0u8; 12];
        connection.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200", "served within the cap");
        held.push(connection);
    }
    let mut over = TcpStream::connect(system.gateway_addr()).await.unwrap();
    let _ = over.write_all(request).await;
    assert_eq!(read_until_closed(&mut over).await, "", "closed unanswered");

    // One slot freed: the next connection is served again.
    drop(held.pop());
    platform_testing::wait::until(
        "a freed slot is used again",
        Duration::from_secs(5),
        async || {
            let Ok(mut connection) = TcpStream::connect(system.gateway_addr()).await else {
                return false;
            };
            let _ = connection.write_all(request).await;
            let mut first = [0u8; 12];
            connection.read_exact(&mut first).await.is_ok() && &first == b"HTTP/1.1 200"
        },
    )
    .await;
    system.stop().await;
}
