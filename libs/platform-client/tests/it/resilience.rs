//! Retries, the retry budget and outlier ejection against real servers on loopback
//! addresses (127.0.0.1, 127.0.0.2: one port, several "replicas" of one name).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use platform_client::{
    ChannelOptions, Channels, Client, OutlierOptions, RetryOptions, SafeToRepeat,
};
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_client::UserServiceClient;
use platform_testing::code;
use tokio::net::TcpListener;
use tonic::{Code, Status};

use crate::support::{
    FakeDns, answered_by, ejections, get_user, get_user_request, observe, retries, send_get_user,
    serve, serve_on, trace,
};

const SECOND: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A name that resolves to `ips`, on `port`, with `options`.
fn client_of_name(ips: &[IpAddr], port: u16, options: ChannelOptions) -> (Client, String) {
    let dns = Arc::new(FakeDns::default());
    dns.0.lock().unwrap().extend(ips);
    let url = format!("http://users.test:{port}");
    let client = Channels::with_resolver(options, dns)
        .client(&url, Duration::from_secs(5))
        .unwrap();
    (client, url)
}

/// `GetUser(id)` marked safe to repeat.
async fn safe_get(client: &Client, id: &str, timeout: Option<Duration>) -> Result<String, Status> {
    let mut request = get_user_request(id, timeout);
    request.extensions_mut().insert(SafeToRepeat);
    send_get_user(client, request).await
}

async fn create(client: &Client) -> Result<(), Status> {
    UserServiceClient::new(client.clone())
        .create_user(pb::CreateUserRequest::default())
        .await
        .map(drop)
}

#[tokio::test]
async fn a_dead_address_is_retried_on_a_live_one() {
    let (_, metrics, _observing) = observe();
    let live = serve().await;
    let port = live.addr.port();
    // Nothing listens on 127.0.0.2 at that port.
    let (client, _) = client_of_name(
        &[live.addr.ip(), SECOND.into()],
        port,
        ChannelOptions::default(),
    );

    for _ in 0..20 {
        // Not marked safe: a refused connection never reached a handler.
        assert_eq!(
            get_user(&client, "0", None).await.unwrap(),
            live.addr.to_string()
        );
    }
    let rendered = metrics.render();
    assert!(
        retries(&rendered, "GetUser", Some("connect")) >= 1.0,
        "{rendered}"
    );
    assert_eq!(live.calls("GetUser"), 20, "each call answered once");
}

#[tokio::test]
async fn a_draining_server_loses_no_safe_call() {
    let (_, metrics, _observing) = observe();
    let draining = serve().await;
    let port = draining.addr.port();
    let staying = serve_on(TcpListener::bind((SECOND, port)).await.unwrap()).await;
    let (client, _) = client_of_name(
        &[draining.addr.ip(), staying.addr.ip()],
        port,
        ChannelOptions::default(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, stop, failed, done) =
                (client.clone(), stop.clone(), failed.clone(), done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match safe_get(&client, "5", None).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served_before = draining.calls("GetUser");
    assert!(served_before > 0, "both replicas get calls");
    draining.shut_down().await.unwrap();
    let at_shutdown = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    assert_eq!(failed.load(Ordering::Relaxed), 0, "{}", metrics.render());
    assert!(done.load(Ordering::Relaxed) > at_shutdown, "calls went on");
    assert!(staying.calls("GetUser") > 0);
}

#[tokio::test]
async fn a_call_that_reached_a_handler_is_repeated_only_if_safe() {
    let (_, metrics, _observing) = observe();
    let server = serve().await;
    let client = server.client(Duration::from_secs(5));

    // A create without an idempotency key: the handler ran, once is all it gets.
    assert_eq!(code(create(&client).await), Code::Unavailable);
    assert_eq!(server.calls("CreateUser"), 1);
    // An unmarked read: the same.
    assert_eq!(
        code(get_user(&client, "unavailable", None).await),
        Code::Unavailable
    );
    assert_eq!(server.calls("GetUser"), 1);
    // A read marked safe: every attempt.
    assert_eq!(
        code(safe_get(&client, "unavailable", None).await),
        Code::Unavailable
    );
    assert_eq!(server.calls("GetUser"), 1 + 3);
    let rendered = metrics.render();
    assert_eq!(retries(&rendered, "GetUser", Some("unavailable")), 2.0);
    assert_eq!(retries(&rendered, "CreateUser", None), 0.0);

    // A method the client was told is safe, without marking the request.
    let options = ChannelOptions {
        retry: RetryOptions {
            safe_methods: HashSet::from(["/users.v1.UserService/GetUser".to_owned()]),
            ..RetryOptions::default()
        },
        ..ChannelOptions::default()
    };
    let url = format!("http://{}", server.addr);
    let reads_safe = Channels::new(options)
        .client(&url, Duration::from_secs(5))
        .unwrap();
    get_user(&reads_safe, "unavailable", None)
        .await
        .unwrap_err();
    assert_eq!(server.calls("GetUser"), 4 + 3);
    create(&reads_safe).await.unwrap_err();
    assert_eq!(server.calls("CreateUser"), 2);
}

#[tokio::test]
async fn the_budget_stops_a_retry_storm() {
    let (_, metrics, _observing) = observe();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let client = Channels::new(ChannelOptions::default())
        .client(&url, Duration::from_secs(5))
        .unwrap();

    let calls = 1000;
    for _ in 0..calls {
        let error = safe_get(&client, "0", None).await.unwrap_err();
        assert_eq!(error.code(), Code::Unavailable);
    }
    let rendered = metrics.render();
    let retried = retries(&rendered, "GetUser", None);
    // Unbounded, every call would be tried three times: 2000 retries. The budget
    // allows 20% of calls plus a floor of 10 a second over its 10 s window.
    let allowed = 0.2 * f64::from(calls) + 100.0;
    assert!(retried > 0.0, "{rendered}");
    assert!(retried <= allowed, "{retried} retries for {calls} calls");
    // The only endpoint is never ejected, however often it fails.
    assert_eq!(ejections(&rendered, &url), 0.0, "{rendered}");
}

#[tokio::test]
async fn retries_stay_within_the_deadline() {
    let (_spans, _tracing) = trace();
    let server = serve().await;
    let client = Channels::new(ChannelOptions::default())
        .client(&format!("http://{}", server.addr), Duration::from_secs(5))
        .unwrap();

    // Each attempt fails after 150 ms: the retries fit in what is left of 400 ms,
    // each told how much that is.
    let deadline = Duration::from_millis(400);
    let started = Instant::now();
    let error = safe_get(&client, "unavailable-after-150", Some(deadline))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(error.code(), Code::DeadlineExceeded | Code::Unavailable),
        "{error:?}"
    );
    assert!(took < deadline + Duration::from_millis(200), "{took:?}");
    let timeouts: Vec<Duration> = server
        .seen()
        .iter()
        .map(|s| crate::client::parse_timeout(s.grpc_timeout.as_deref().unwrap()))
        .collect();
    assert!(timeouts.len() >= 2, "retried: {timeouts:?}");
    assert!(timeouts[0] <= deadline);
    assert!(
        timeouts.windows(2).all(|w| w[1] < w[0]),
        "each retry carries what is left: {timeouts:?}"
    );

    // Too little left after the first attempt: no retry.
    let before = server.calls("GetUser");
    safe_get(
        &client,
        "unavailable-after-150",
        Some(Duration::from_millis(165)),
    )
    .await
    .unwrap_err();
    assert_eq!(server.calls("GetUser"), before + 1);
}

#[tokio::test]
async fn a_failing_endpoint_is_ejected_then_readmitted() {
    let (_, metrics, _observing) = observe();
    let live = serve().await;
    let port = live.addr.port();
    let options = ChannelOptions {
        outlier: OutlierOptions {
            consecutive_failures: 2,
            base_ejection: Duration::from_millis(200),
            max_ejection: Duration::from_millis(400),
        },
        ..ChannelOptions::default()
    };
    let (client, url) = client_of_name(&[live.addr.ip(), SECOND.into()], port, options);

    // Nothing on 127.0.0.2 yet: it fails until it is taken out.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ejections(&metrics.render(), &url) < 1.0 {
        assert!(Instant::now() < deadline, "never ejected");
        get_user(&client, "0", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // It comes back: after its ejection it is tried again, and answers.
    let back = serve_on(TcpListener::bind((SECOND, port)).await.unwrap()).await;
    let both = HashSet::from([live.addr.to_string(), back.addr.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if answered_by(&client, 40).await == both {
            break;
        }
        assert!(Instant::now() < deadline, "never readmitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
