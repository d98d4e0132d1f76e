//! The edge's layer stack as a client sees it, with no service behind it: the
//! answers the layers give on their own (404, 405, 401, 429, 413), the request id on
//! every one of them, and the in-flight gauge when a client walks away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use gateway::Settings;
use gateway::client_address::ClientAddresses;
use gateway::edge::{self, Edge};
use gateway::ratelimit::Limiter;
use gateway::upstream::Upstream;
use platform_auth::Verifier;
use platform_client::{ChannelOptions, Channels};
use platform_server::http::HttpService;
use platform_testing::metrics;
use platform_testing::wait::until;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::common;

/// How long the edge may take to notice a request arrive or go.
const WITHIN: Duration = Duration::from_secs(5);

/// Where nothing listens: the tests that use it never reach an upstream.
const NOWHERE: &str = "http://127.0.0.1:1";

/// The edge of the platform's two services, both at `upstream`.
fn edge(settings: &Settings, upstream: &str) -> Arc<Edge> {
    let pool = platform_proto::descriptor_pool().clone();
    let names = ["users.v1.UserService", "orders.v1.OrderService"];
    let table = common::platform();
    let client = Channels::new(ChannelOptions::default())
        .client(upstream, Duration::from_secs(10))
        .expect("a valid URL");
    let channel = Upstream::new(client.clone(), client);
    Arc::new(Edge {
        table,
        rules: platform_api::rules::Validator::new(pool.clone()),
        pool,
        upstreams: names
            .iter()
            .map(|name| ((*name).to_owned(), channel.clone()))
            .collect(),
        verifier: Arc::new(Verifier::new(Vec::new(), "platform-users", "platform").unwrap()),
        public_methods: settings.public_methods(),
        limiter: Limiter::new(&settings.rate_limit).unwrap(),
        http: settings.http.clone(),
        client_addresses: ClientAddresses::new(&settings.rate_limit),
        openapi: Bytes::from_static(b"{}"),
        draining: tokio_util::sync::CancellationToken::new(),
    })
}

fn router(settings: &Settings) -> HttpService {
    edge::service(edge(settings, NOWHERE), settings)
}

async fn send(router: &HttpService, request: Request<Body>) -> (Response, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

/// The edge answered on its own: `status`, and a `google.rpc.Status` body of `code`.
#[track_caller]
fn assert_answer(response: &Response, body: &Value, status: StatusCode, code: u64) {
    assert_eq!(response.status(), status, "{body}");
    assert_eq!(body["code"], code, "{body}");
}

/// The response carries an `x-request-id` the edge made: a fresh UUID, in place of
/// `sent`.
#[track_caller]
fn assert_fresh_request_id(response: &Response, sent: &str) {
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{sent:?} replaced: {id}");
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn unmatched_paths_and_methods_are_404_and_405_with_a_request_id() {
    let router = router(&Settings::default());
    let (response, body) = send(&router, get("/v2/nothing/here")).await;
    assert_answer(&response, &body, StatusCode::NOT_FOUND, 5);
    assert_fresh_request_id(&response, "none sent");

    let delete = Request::delete("/v1/orders").body(Body::empty()).unwrap();
    let (response, body) = send(&router, delete).await;
    assert_answer(&response, &body, StatusCode::METHOD_NOT_ALLOWED, 12);
    assert_eq!(response.headers()[header::ALLOW], "GET, POST");
}

#[tokio::test]
async fn requests_that_break_the_proto_rules_are_400_before_any_call() {
    // The upstream is NOWHERE: had the request been sent, the answer would be 503.
    let router = router(&Settings::default());
    let sign_up = Request::post("/v1/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"email": "", "displayName": "Ada", "password": "short"}"#,
        ))
        .unwrap();
    let (response, body) = send(&router, sign_up).await;
    assert_answer(&response, &body, StatusCode::BAD_REQUEST, 3);
    assert_eq!(
        body["message"],
        "invalid request: email: value is empty, which is not a valid email address; \
         password: must be at least 8 characters"
    );
    assert_eq!(
        body["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    let fields = common::each(&body["details"][0]["fieldViolations"], "field");
    assert_eq!(fields, ["email", "password"]);

    // A valid one goes on to the (absent) upstream.
    let valid = Request::post("/v1/users")
        .body(Body::from(
            r#"{"email": "ada@example.com", "displayName": "Ada", "password": "correct horse battery"}"#,
        ))
        .unwrap();
    let (response, _) = send(&router, valid).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_sane_client_request_id_is_kept_and_any_other_replaced() {
    let router = router(&Settings::default());
    let with_id = |id: &str| {
        Request::get("/v2/nothing")
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let (response, _) = send(&router, with_id("req-abc-123")).await;
    assert_eq!(response.headers()["x-request-id"], "req-abc-123");
    for insane in ["has space", &"x".repeat(129)] {
        let (response, _) = send(&router, with_id(insane)).await;
        assert_fresh_request_id(&response, insane);
    }
}

#[tokio::test]
async fn protected_routes_need_a_valid_token() {
    let router = router(&Settings::default());
    let (response, body) = send(&router, get("/v1/orders")).await;
    assert_answer(&response, &body, StatusCode::UNAUTHORIZED, 16);
    assert_eq!(body["message"], "missing access token");
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"platform\""
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");

    // Even a public route refuses a token that is not valid.
    let forged = Request::get("/v1/auth/jwks")
        .header(header::AUTHORIZATION, "Bearer abc.def.ghi")
        .body(Body::empty())
        .unwrap();
    let (response, _) = send(&router, forged).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn refused_requests_spend_the_address_budget_so_guessing_gets_429() {
    let mut settings = Settings::default();
    settings.rate_limit.per_second = 1;
    settings.rate_limit.burst = 1;
    let router = router(&settings);
    let (first, _) = send(&router, get("/v1/orders")).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let (second, body) = send(&router, get("/v1/orders")).await;
    assert_answer(&second, &body, StatusCode::TOO_MANY_REQUESTS, 8);
    let seconds: u64 = second.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds >= 1);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_not() {
    let mut settings = Settings::default();
    settings.http.max_body_bytes = 16;
    let router = router(&settings);
    let body = r#"{"email": "someone@example.com"}"#;
    let declared = Request::post("/v1/users")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let streamed = Request::post("/v1/users")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    for request in [declared, streamed] {
        let (response, json) = send(&router, request).await;
        assert_answer(&response, &json, StatusCode::PAYLOAD_TOO_LARGE, 3);
        assert_eq!(json["message"], "request body larger than 16 bytes");
        assert!(response.headers().contains_key("x-request-id"));
    }
}

/// The value of `http_server_active_requests` for `GET route`, 0 when absent.
fn active_requests(route: &str) -> f64 {
    let page = platform_server::metrics::handle().render();
    metrics::sample(
        &page,
        "http_server_active_requests",
        &[("http_route", route)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_client_that_disconnects_mid_request_leaves_no_request_in_flight() {
    // An upstream that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });

    let mut settings = Settings::default();
    settings.http.default_timeout_ms = 60_000;
    let app =
        Router::new().fallback_service(edge::service(edge(&settings, &silent_url), &settings));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let route = "/v1/auth/jwks";
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(format!("GET {route} HTTP/1.1\r\nHost: gateway\r\n\r\n").as_bytes())
        .await
        .unwrap();
    until("the request is in flight", WITHIN, async || {
        (active_requests(route) - 1.0).abs() < f64::EPSILON
    })
    .await;
    let mut nothing = [0_u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), client.read(&mut nothing))
            .await
            .is_err(),
        "no answer while the upstream is silent"
    );

    drop(client);
    until("the gauge is back to 0", WITHIN, async || {
        active_requests(route) == 0.0
    })
    .await;
    let page = platform_server::metrics::handle().render();
    let status = [("http_response_status_code", "499")];
    assert!(
        metrics::sum(&page, "http_server_requests_total", &status) >= 1.0,
        "the abandoned request is counted as 499\n{page}"
    );
}
