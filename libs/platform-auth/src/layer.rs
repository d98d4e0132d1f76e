//! The gRPC side: a tower layer that authenticates the caller of every request to a
//! tonic server, and the helpers handlers use to read the result.

use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use platform_client::middleware::{Inner, Middleware, ResponseFuture, Wrapped, take_ready};
use tonic::Status;
use tower_layer::Layer;

use crate::caller::{BearerToken, Caller};
use crate::verifier::{Verifier, VerifyError};

/// Tower layer for tonic servers: reads `authorization: Bearer <jwt>` from the HTTP/2
/// request; when present and valid, inserts [`Caller`] and [`BearerToken`] into the
/// request extensions (tonic copies http extensions into `tonic::Request` extensions);
/// when present but invalid answers at once with `UNAUTHENTICATED` without calling the
/// inner service; when absent, passes the request through with no `Caller` (public RPCs
/// such as sign-up decide).
///
/// When the token's key is unknown and the verifier's key source is unreachable, the
/// answer is `UNAVAILABLE` instead: the token may well be valid, so the client should
/// retry rather than sign in again.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
}

impl AuthLayer {
    /// A layer verifying tokens with `verifier`.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        AuthLayer { verifier }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Wrapped<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wrapped::new(self.clone(), inner)
    }
}

impl<S: Inner<B>, B: Send + 'static> Middleware<S, B> for AuthLayer {
    fn call(&self, inner: &mut S, mut request: http::Request<B>) -> ResponseFuture<S::Error> {
        let mut inner = take_ready(inner);
        let verifier = Arc::clone(&self.verifier);
        Box::pin(async move {
            let token = match bearer_from_headers(request.headers()) {
                Ok(Some(token)) => token,
                Ok(None) => return inner.call(request).await,
                Err(status) => return Ok(status.into_http()),
            };
            match verifier.verify(&token).await {
                Ok(caller) => {
                    let extensions = request.extensions_mut();
                    extensions.insert(caller);
                    extensions.insert(BearerToken(token));
                    inner.call(request).await
                }
                Err(err) => {
                    tracing::debug!(reason = %err, "rejected a call with an invalid access token");
                    Ok(status_for(err).into_http())
                }
            }
        })
    }
}

fn status_for(err: VerifyError) -> Status {
    match err {
        VerifyError::KeysUnavailable => Status::unavailable(err.to_string()),
        _ => Status::unauthenticated(err.to_string()),
    }
}

/// The bearer token of the request: `Ok(None)` without an `authorization` header, an
/// `UNAUTHENTICATED` status when the header is not a single `Bearer <token>`.
fn bearer_from_headers(headers: &HeaderMap) -> Result<Option<String>, Status> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two credentials leave it ambiguous which one the call is made with.
    if values.next().is_some() {
        return Err(Status::unauthenticated(
            "invalid access token: more than one authorization header",
        ));
    }
    let malformed = || Status::unauthenticated(VerifyError::Malformed.to_string());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Status::unauthenticated(
            "invalid access token: authorization scheme must be Bearer",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(malformed());
    }
    Ok(Some(token.to_owned()))
}

/// For handlers: the verified caller, or `UNAUTHENTICATED` "missing access token".
pub fn require_caller<T>(request: &tonic::Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("missing access token"))
}

/// For handlers that forward the caller's token downstream.
pub fn bearer_token<T>(request: &tonic::Request<T>) -> Option<&BearerToken> {
    request.extensions().get::<BearerToken>()
}
