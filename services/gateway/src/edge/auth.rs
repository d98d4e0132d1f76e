//! Authentication at the edge, around the rate limiter, in one step ([`admit`]).
//!
//! The bearer token is verified first (a token, when present, must be valid even on a
//! public route) and the outcome, an [`Identity`], stored in the request's extensions;
//! the rate limiter keys on it. A refused identity is then answered `401` +
//! `WWW-Authenticate: Bearer`. Refusing only after the rate limit means failed attempts
//! spend the client address's budget, so tokens cannot be guessed at full speed.
//!
//! The services verify the token again themselves; the handler forwards it.

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use platform_auth::{BearerToken, Caller, VerifyError};
use tonic::Code;

use super::Edge;
use crate::errors::{edge_error, unauthorized};

/// Who is calling, as the authentication layer found out; in every routed request's
/// extensions.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A verified token.
    Caller {
        /// Whom the token was issued to.
        caller: Caller,
        /// The token itself, forwarded to the upstream.
        token: BearerToken,
    },
    /// No token, on a public route.
    Anonymous,
    /// Not let through; answered with `401` once the rate limiter had its say.
    Refused(Refusal),
}

/// Why a request is refused with `401`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A route that needs a token, called without one.
    MissingToken,
    /// A token (or `Authorization` header) that is not valid, and why.
    InvalidToken(String),
}

/// Who is calling, whether they are within their rate, and whether they may call;
/// then the handler serves the request. Refusing a token only after the rate limit
/// means failed attempts spend the client address's budget.
pub(super) async fn admit(edge: &Edge, mut request: Request) -> Response {
    if let Err(response) = identify(edge, &mut request).await {
        return response;
    }
    let key = crate::ratelimit::caller_key(edge, &request);
    if let Err(response) = crate::ratelimit::spend(edge, &key).await {
        return response;
    }
    match request.extensions().get::<Identity>() {
        Some(Identity::Caller { .. } | Identity::Anonymous) => {
            super::handler::serve(edge, request).await
        }
        Some(Identity::Refused(Refusal::InvalidToken(reason))) => unauthorized(reason, true),
        // Fails closed: no identity is no caller.
        Some(Identity::Refused(Refusal::MissingToken)) | None => {
            unauthorized("missing access token", false)
        }
    }
}

/// Verifies the bearer token and stores the [`Identity`]. When the signing keys
/// cannot be fetched the answer is `503` at once: the caller is not at fault.
async fn identify(edge: &Edge, request: &mut Request) -> Result<(), Response> {
    let public = super::is_public(edge, request.extensions());
    let identity = match bearer(request.headers()) {
        Err(()) => Identity::Refused(Refusal::InvalidToken(
            "the Authorization header must be `Bearer <token>`".to_owned(),
        )),
        Ok(None) if public => Identity::Anonymous,
        Ok(None) => Identity::Refused(Refusal::MissingToken),
        Ok(Some(token)) => match edge.verifier.verify(token).await {
            Ok(caller) => Identity::Caller {
                caller,
                token: BearerToken(token.to_owned()),
            },
            Err(VerifyError::KeysUnavailable) => {
                return Err(edge_error(
                    Code::Unavailable,
                    "cannot verify tokens right now, retry later",
                    &[],
                ));
            }
            Err(error) => Identity::Refused(Refusal::InvalidToken(error.to_string())),
        },
    };
    request.extensions_mut().insert(identity);
    Ok(())
}

/// The bearer token of an `Authorization` header; `Err` when the header is there but
/// is not a bearer token.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
        Ok(Some(token.trim()))
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), Ok(None));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def"),
        );
        assert_eq!(bearer(&h), Ok(Some("abc.def")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  xyz "),
        );
        assert_eq!(bearer(&h), Ok(Some("xyz")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwdw=="),
        );
        assert_eq!(bearer(&h), Err(()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), Err(()));
    }
}
