//! The tower layer, driven over plain http requests with a stand-in inner service.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform_auth::{
    AuthLayer, BearerToken, Caller, KeySource, KeySourceError, Role, SigningKey, TokenIssuer,
    TokenSettings, Verifier, bearer_token, require_caller,
};
use tonic::body::Body;
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "users";
const AUDIENCE: &str = "platform";

/// What the inner service saw, as a handler would see it through tonic.
#[derive(Debug, Default)]
struct Seen {
    calls: usize,
    caller: Option<Caller>,
    bearer: Option<String>,
}

struct Fixture {
    key: SigningKey,
    verifier: Arc<Verifier>,
}

impl Fixture {
    fn new() -> Self {
        let key = SigningKey::generate().unwrap();
        let verifier = Verifier::new(vec![key.public_jwk()], ISSUER, AUDIENCE).unwrap();
        Fixture {
            key,
            verifier: Arc::new(verifier),
        }
    }

    fn token(&self, ttl: Duration) -> String {
        let settings = TokenSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            ttl,
        };
        TokenIssuer::new(self.key.clone(), settings)
            .issue("user-9", Role::Admin)
            .unwrap()
            .access_token
    }
}

/// Sends `request` through the layer over an inner service that records what it saw.
async fn call(verifier: Arc<Verifier>, request: http::Request<()>) -> (http::Response<Body>, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorder = seen.clone();
    let inner = service_fn(move |request: http::Request<()>| {
        let recorder = recorder.clone();
        async move {
            let request = tonic::Request::from_http(request);
            let mut seen = recorder.lock().unwrap();
            seen.calls += 1;
            seen.caller = require_caller(&request).ok();
            seen.bearer = bearer_token(&request).map(|t| t.as_str().to_owned());
            Ok::<_, Infallible>(http::Response::new(Body::empty()))
        }
    });
    let response = AuthLayer::new(verifier)
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    let seen = Arc::try_unwrap(seen).unwrap().into_inner().unwrap();
    (response, seen)
}

fn request(authorization: Option<&str>) -> http::Request<()> {
    let mut builder = http::Request::builder().uri("/users.v1.Users/GetMe");
    if let Some(value) = authorization {
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    builder.body(()).unwrap()
}

fn grpc_status(response: &http::Response<Body>) -> Option<&str> {
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap())
}

fn grpc_message(response: &http::Response<Body>) -> String {
    let raw = response
        .headers()
        .get("grpc-message")
        .unwrap()
        .to_str()
        .unwrap();
    // tonic percent-encodes the message; ours only has spaces and colons to decode.
    raw.replace("%20", " ").replace("%3A", ":")
}

#[tokio::test]
async fn missing_header_passes_through_without_a_caller() {
    let fixture = Fixture::new();
    let (response, seen) = call(fixture.verifier.clone(), request(None)).await;
    assert_eq!(seen.calls, 1);
    assert_eq!(seen.caller, None);
    assert_eq!(seen.bearer, None);
    assert_eq!(grpc_status(&response), None);
}

#[tokio::test]
async fn valid_token_reaches_the_handler_as_caller_and_bearer_token() {
    let fixture = Fixture::new();
    let token = fixture.token(Duration::from_secs(60));
    for scheme in ["Bearer", "bearer"] {
        let header = format!("{scheme} {token}");
        let (response, seen) = call(fixture.verifier.clone(), request(Some(&header))).await;
        assert_eq!(seen.calls, 1);
        assert_eq!(
            seen.caller,
            Some(Caller {
                subject: "user-9".into(),
                role: Role::Admin
            })
        );
        assert_eq!(seen.bearer.as_deref(), Some(token.as_str()));
        assert_eq!(grpc_status(&response), None);
    }
}

#[tokio::test]
async fn invalid_tokens_are_rejected_before_the_handler() {
    let fixture = Fixture::new();
    let expired = {
        let strict = Verifier::new(vec![fixture.key.public_jwk()], ISSUER, AUDIENCE)
            .unwrap()
            .with_leeway(Duration::ZERO);
        Arc::new(strict)
    };
    let expired_token = format!("Bearer {}", fixture.token(Duration::ZERO));

    let cases: Vec<(Arc<Verifier>, String, &str)> = vec![
        (expired, expired_token, "invalid access token: expired"),
        (
            fixture.verifier.clone(),
            "Bearer garbage".into(),
            "invalid access token: malformed",
        ),
        (
            fixture.verifier.clone(),
            "Bearer ".into(),
            "invalid access token: malformed",
        ),
        (
            fixture.verifier.clone(),
            "Bearer".into(),
            "invalid access token: malformed",
        ),
        (
            fixture.verifier.clone(),
            format!("Basic {}", fixture.token(Duration::from_secs(60))),
            "invalid access token: authorization scheme must be Bearer",
        ),
    ];
    for (verifier, header, message) in cases {
        let (response, seen) = call(verifier, request(Some(&header))).await;
        assert_eq!(seen.calls, 0, "{header:.30}");
        assert_eq!(grpc_status(&response), Some("16"), "{header:.30}");
        assert_eq!(grpc_message(&response), message);
        assert_eq!(
            response.headers().get(http::header::CONTENT_TYPE).unwrap(),
            "application/grpc"
        );
    }
}

#[tokio::test]
async fn two_authorization_headers_are_rejected() {
    let fixture = Fixture::new();
    let token = format!("Bearer {}", fixture.token(Duration::from_secs(60)));
    let mut request = request(Some(&token));
    request
        .headers_mut()
        .append(http::header::AUTHORIZATION, token.parse().unwrap());
    let (response, seen) = call(fixture.verifier.clone(), request).await;
    assert_eq!(seen.calls, 0);
    assert_eq!(grpc_status(&response), Some("16"));
}

struct DownSource(AtomicUsize);

#[async_trait::async_trait]
impl KeySource for DownSource {
    async fn fetch(&self) -> Result<Vec<platform_auth::Jwk>, KeySourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(KeySourceError("users service unreachable".into()))
    }
}

#[tokio::test]
async fn unreachable_key_source_answers_unavailable() {
    let fixture = Fixture::new();
    let verifier = Verifier::with_source(
        Arc::new(DownSource(AtomicUsize::new(0))),
        Duration::from_secs(60),
        ISSUER,
        AUDIENCE,
    );
    let header = format!("Bearer {}", fixture.token(Duration::from_secs(60)));
    let (response, seen) = call(Arc::new(verifier), request(Some(&header))).await;
    assert_eq!(seen.calls, 0);
    assert_eq!(grpc_status(&response), Some("14"));
}

#[test]
fn require_caller_without_the_layer_is_unauthenticated() {
    let request = tonic::Request::new(());
    let status = require_caller(&request).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(status.message(), "missing access token");
    assert!(bearer_token(&request).is_none());
}

#[test]
fn bearer_token_is_read_from_tonic_extensions() {
    let mut request = tonic::Request::new(());
    request.extensions_mut().insert(BearerToken("abc".into()));
    assert_eq!(bearer_token(&request).unwrap().as_str(), "abc");
}
