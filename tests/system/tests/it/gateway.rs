//! The HTTP edge end to end: real HTTP against the gateway in front of the real users
//! and orders services (and a team backend known only from configuration).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::edge::{answered, expect_json, field_violations, two_books};
use system_tests::{Options, PASSWORD, System};

async fn body(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn the_whole_journey() {
    let system = System::start().await;
    let (ada, token) = system.user("ada@example.com").await;

    // Create an order twice with one Idempotency-Key: one order.
    let keyed = [
        ("Idempotency-Key", "checkout-7"),
        ("X-Request-Id", "req-journey-1"),
    ];
    let mut ids = Vec::new();
    for _ in 0..2 {
        let create = system.request(Method::POST, "/v1/orders", &token, &keyed);
        let response = answered(create.json(&two_books())).await;
        assert_eq!(response.headers()["x-request-id"], "req-journey-1");
        let created = expect_json(response, StatusCode::OK).await;
        assert_eq!(created["userId"], ada.as_str());
        assert_eq!(created["totalCents"], "2500", "int64 as a string");
        assert_eq!(created["status"], "ORDER_STATUS_PENDING");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "the retry got the same order");

    let listed = system
        .get(
            "/v1/orders?page_size=10&status=ORDER_STATUS_PENDING",
            &token,
        )
        .await;
    assert!(
        listed.headers().contains_key("x-request-id"),
        "a request id is made when none is sent"
    );
    let listed = body(listed).await;
    assert_eq!(listed["orders"].as_array().unwrap().len(), 1);

    let cancel = format!("/v1/orders/{}:cancel", ids[0]);
    let cancelled = system.send(Method::POST, &cancel, &token).await;
    let cancelled = expect_json(cancelled, StatusCode::OK).await;
    assert_eq!(cancelled["status"], "ORDER_STATUS_CANCELLED");

    let me = system.get(&format!("/v1/users/{ada}"), &token).await;
    let me = body(me).await;
    assert_eq!(me["displayName"], "Test");
    assert!(me.get("password").is_none() && me.get("passwordHash").is_none());
    system.stop().await;
}

#[tokio::test]
async fn client_errors_are_4xx_with_a_status_body() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    let http = &system.http;

    // 400: malformed JSON, unknown field, and a service's own field violations.
    let malformed = http
        .post(system.url("/v1/users"))
        .header("content-type", "application/json")
        .body("{\"email\": ");
    let malformed = expect_json(answered(malformed).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(malformed["code"], 3);
    assert!(
        malformed["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{malformed}"
    );

    let unknown = json!({ "emial": "x@example.com" });
    let unknown = system.post_anonymous("/v1/users", &unknown).await;
    let unknown = expect_json(unknown, StatusCode::BAD_REQUEST).await;
    assert!(unknown["message"].as_str().unwrap().contains("emial"));

    let invalid = json!({ "email": "nope", "displayName": "", "password": "x" });
    let invalid = system.post_anonymous("/v1/users", &invalid).await;
    let invalid = expect_json(invalid, StatusCode::BAD_REQUEST).await;
    let violations = field_violations(&invalid);
    let fields: Vec<&str> = violations.iter().map(|(field, _)| field.as_str()).collect();
    // An empty display name is both too short and not the pattern.
    assert_eq!(
        fields,
        ["email", "display_name", "display_name", "password"]
    );

    // 401 without a token, with a bad one, and with `alg: none`.
    let anonymous = system.get_anonymous("/v1/orders").await;
    assert!(
        anonymous.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        expect_json(anonymous, StatusCode::UNAUTHORIZED).await["code"],
        16
    );
    let forged = system.get("/v1/orders", "abc.def.ghi").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(
        forged.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let none = format!(
        "{}.{}.",
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", "eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIn0"
    );
    let none = system.get("/v1/orders", &none).await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);

    // 403: listing users is for admins.
    let forbidden = system.get("/v1/users", &token).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // 404: someone else's order, and a path no route matches.
    let (_, bob) = system.user("bob@example.com").await;
    let bobs = json!({ "items": [{ "sku": "X", "quantity": 1, "unitPriceCents": 1 }] });
    let bobs = body(system.post("/v1/orders", &bob, &bobs).await).await;
    let bobs = bobs["id"].as_str().unwrap();
    let hidden = system.get(&format!("/v1/orders/{bobs}"), &token).await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    let nowhere = system.get_anonymous("/v2/nothing/here").await;
    assert_eq!(expect_json(nowhere, StatusCode::NOT_FOUND).await["code"], 5);

    // 405: a known path with the wrong method.
    let wrong = system.send(Method::DELETE, "/v1/orders", &token).await;
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = wrong.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    // 409: the email is taken.
    let taken = json!({ "email": "ADA@example.com", "displayName": "Ada", "password": PASSWORD });
    let taken = system.post_anonymous("/v1/users", &taken).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    // 413: a body over the limit.
    let huge = "x".repeat(1024 * 1024 + 1);
    let json = [("content-type", "application/json")];
    let too_big = system.request(Method::POST, "/v1/orders", &token, &json);
    let too_big = answered(too_big.body(huge)).await;
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // The public port does not serve metrics.
    let metrics = system.get_anonymous("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::NOT_FOUND);
    system.stop().await;
}

#[tokio::test]
async fn a_caller_over_the_rate_gets_429_with_retry_after() {
    let system = System::start_with_gateway(|s| {
        s.rate_limit.per_second = 1;
        s.rate_limit.burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = system.get_anonymous("/v1/auth/jwks").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "the burst passes");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let seconds: u64 = retry_after.expect("Retry-After is set").parse().unwrap();
    assert!(seconds >= 1);
    system.stop().await;
}

#[tokio::test]
async fn a_backend_that_is_down_is_503_and_the_gateway_recovers() {
    let mut system = System::start().await;
    let (ada, token) = system.user("ada@example.com").await;
    let orders = system.orders.take().unwrap();
    let orders_addr = orders.addr;
    orders.stop().await;

    let down = tokio::time::timeout(Duration::from_secs(5), system.get("/v1/orders", &token))
        .await
        .expect("answers promptly, never hangs");
    let down = expect_json(down, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down["code"], 14);
    assert_eq!(
        down["message"], "the service is unavailable, retry later",
        "no internal text"
    );
    // Orders being down is orders' routes' problem: the gateway stays in rotation and
    // keeps serving everything else.
    assert_eq!(
        system.readyz().await,
        200,
        "no cascade into the gateway's readiness"
    );
    let openapi = system.get_anonymous("/openapi.json").await;
    assert_eq!(openapi.status(), StatusCode::OK);
    assert_eq!(
        system
            .get(&format!("/v1/users/{ada}"), &token)
            .await
            .status(),
        StatusCode::OK
    );

    let mut settings = system.orders_settings.clone();
    settings.grpc.addr = orders_addr;
    system.orders = Some(system_tests::start::<orders::Orders>(settings).await);
    system.wait_ready().await;
    let back = system.get("/v1/orders", &token).await;
    assert_eq!(back.status(), StatusCode::OK);
    system.stop().await;
}

#[tokio::test]
async fn past_the_deadline_is_504() {
    // Expensive hashing makes sign-up slower than the deadline the client asks for.
    let system = System::start_with(Options {
        users: Some(|s| {
            s.password.memory_kib = 65536;
            s.password.iterations = 8;
        }),
        ..Options::default()
    })
    .await;
    let slow = json!({ "email": "slow@example.com", "displayName": "Slow", "password": PASSWORD });
    let sign_up = system.http.post(system.url("/v1/users"));
    let response = answered(sign_up.header("Request-Timeout", "0.05").json(&slow)).await;
    assert_eq!(
        expect_json(response, StatusCode::GATEWAY_TIMEOUT).await["code"],
        4
    );
    system.stop().await;
}

#[tokio::test]
async fn a_team_service_is_exposed_by_configuration_alone() {
    let system = System::start().await;
    // Public by configuration: no token needed.
    let item = system.get_anonymous("/v1/inventory/SKU-9").await;
    let item = expect_json(item, StatusCode::OK).await;
    assert_eq!(
        item,
        json!({ "sku": "SKU-9", "inStock": "42", "availability": "AVAILABILITY_IN_STOCK" })
    );

    // Custom verb with a body; protected.
    let reserve = "/v1/inventory/SKU-9:reserve";
    let anonymous = system
        .post_anonymous(reserve, &json!({ "quantity": 2 }))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let (_, token) = system.user("ada@example.com").await;
    let reserved = system
        .post(reserve, &token, &json!({ "quantity": 2 }))
        .await;
    assert_eq!(body(reserved).await["inStock"], "40");
    let refused = system
        .post(reserve, &token, &json!({ "quantity": 50 }))
        .await;
    let refused = expect_json(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["message"], "not enough stock");
    system.stop().await;
}

#[tokio::test]
async fn a_team_request_that_breaks_its_rules_is_400_and_never_sent() {
    let system = System::start().await;
    let (_, token) = system.user("ada@example.com").await;
    // The rules come from the team's descriptor set, loaded at start: the gateway was
    // never built with them.
    let invalid = json!({
        "quantity": 0,
        "deliverTo": { "warehouse": "north 1" },
        "tags": ["ok", "", "much too long"],
    });
    let refused = system
        .post("/v1/inventory/SKU-RULES:reserve", &token, &invalid)
        .await;
    let refused = expect_json(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["code"], 3);
    let violations = field_violations(&refused);
    let violations: Vec<(&str, &str)> = violations
        .iter()
        .map(|(field, description)| (field.as_str(), description.as_str()))
        .collect();
    let expected = [
        (
            "quantity",
            "must be greater than or equal to 1 and less than or equal to 1000",
        ),
        (
            "deliver_to.warehouse",
            "does not match regex pattern `^[A-Z0-9]*$`",
        ),
        ("tags[1]", "must be at least 1 characters"),
        ("tags[2]", "must be at most 8 characters"),
    ];
    assert_eq!(violations, expected);
    assert_eq!(
        system_tests::reservations("SKU-RULES"),
        0,
        "the backend was never called"
    );

    let accepted = system
        .post(
            "/v1/inventory/SKU-RULES:reserve",
            &token,
            &json!({ "quantity": 1, "deliverTo": { "warehouse": "NORTH1" }, "tags": ["ok"] }),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(system_tests::reservations("SKU-RULES"), 1);
    system.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let system = System::start().await;
    let doc = system.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/v1/users", "post"),
        ("/v1/users", "get"),
        ("/v1/users/{id}", "get"),
        ("/v1/users/{id}", "patch"),
        ("/v1/users/{id}", "delete"),
        ("/v1/auth/token", "post"),
        ("/v1/auth/jwks", "get"),
        ("/v1/orders", "post"),
        ("/v1/orders", "get"),
        ("/v1/orders/{id}", "get"),
        ("/v1/orders/{id}:cancel", "post"),
        ("/v1/inventory/{sku}", "get"),
        ("/v1/inventory/{sku}:reserve", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    assert!(doc["paths"]["/v1/orders"]["get"]["security"].is_array());
    assert!(
        doc["paths"]["/v1/auth/token"]["post"]
            .get("security")
            .is_none()
    );
    system.stop().await;
}

#[tokio::test]
async fn the_admin_port_reports_readiness_and_route_metrics() {
    let system = System::start().await;
    let http = &system.http;
    assert_eq!(
        http.get(system.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    system.get_anonymous("/v1/auth/jwks").await;
    system.get_anonymous("/v2/unknown").await;
    let metrics = system.metrics().await;
    assert!(
        metrics.contains(r#"http_server_requests_total{http_request_method="GET",http_route="/v1/auth/jwks",http_response_status_code="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"http_route="unmatched",http_response_status_code="404""#),
        "{metrics}"
    );
    assert!(metrics.contains("http_server_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"rpc_client_call_duration_seconds_bucket{rpc_service="users.v1.UserService",rpc_method="GetJwks""#));
    system.stop().await;
}

#[tokio::test]
async fn upstreams_named_by_dns_are_resolved_and_balanced() {
    // `localhost` resolves to 127.0.0.1 (where the services listen) and usually ::1
    // (where nothing does): the balanced channel must use the address that answers.
    let system = System::start_with(Options {
        upstreams_by_name: true,
        ..Options::default()
    })
    .await;
    let (_, token) = system.user("ada@example.com").await;
    for _ in 0..20 {
        let response = system.get("/v1/orders", &token).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    system.stop().await;
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let system = System::start_with_gateway(|s| {
        s.cors.allowed_origins = vec!["https://app.example.com".to_owned()];
        s.cors.max_age_secs = 600;
    })
    .await;
    let preflight = |origin: &'static str| {
        system
            .http
            .request(reqwest::Method::OPTIONS, system.url("/v1/orders"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type,idempotency-key",
            )
            .send()
    };
    // The allowed origin, and a header it lists (lower case) for that origin.
    let allowed_with = |response: &reqwest::Response, list: &str| {
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        headers[list].to_str().unwrap().to_lowercase()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    let allowed_headers = allowed_with(&allowed, "access-control-allow-headers");
    assert!(
        allowed_headers.contains("idempotency-key"),
        "{allowed_headers}"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let simple = system.http.get(system.url("/v1/auth/jwks"));
    let simple = answered(simple.header("Origin", "https://app.example.com")).await;
    assert_eq!(simple.status(), StatusCode::OK);
    let exposed = allowed_with(&simple, "access-control-expose-headers");
    assert!(exposed.contains("x-request-id"), "{exposed}");
    system.stop().await;
}

#[tokio::test]
async fn sessions_over_http_refresh_sign_out_and_lock_out() {
    let system = System::start().await;
    system.user("ada@example.com").await;
    let sign_in = |password: &str| json!({ "email": "ada@example.com", "password": password });

    let signed_in = system
        .post_anonymous("/v1/auth/token", &sign_in(PASSWORD))
        .await;
    let first = body(signed_in).await;
    assert_eq!(first["expiresIn"], "300");
    let refresh = first["refreshToken"].as_str().unwrap().to_owned();

    // Refreshing needs no access token: the refresh token is the credential.
    let refreshed = system
        .post_anonymous("/v1/auth/refresh", &json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    let second = body(refreshed).await;
    let me = system
        .get(
            "/v1/users?page_size=1",
            second["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        me.status(),
        StatusCode::FORBIDDEN,
        "a valid token, not an admin"
    );

    let reused = system
        .post_anonymous("/v1/auth/refresh", &json!({ "refreshToken": refresh }))
        .await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let sign_out = json!({ "refreshToken": second["refreshToken"] });
    let signed_out = system.post_anonymous("/v1/auth/revoke", &sign_out).await;
    assert_eq!(signed_out.status(), StatusCode::OK);

    for _ in 0..5 {
        let wrong = system
            .post_anonymous("/v1/auth/token", &sign_in("a wrong guess"))
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = system
        .post_anonymous("/v1/auth/token", &sign_in(PASSWORD))
        .await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let details = body(locked).await["details"].clone();
    assert_eq!(
        details[0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    system.stop().await;
}
