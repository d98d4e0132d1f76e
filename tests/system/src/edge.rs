//! The gateway's public port as a test's client reaches it, in process ([`crate::System`])
//! or as a process ([`crate::processes::Processes`]): requests with or without a token,
//! and reading what comes back.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::PASSWORD;

/// An HTTP client and the gateway's base URL.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The HTTP client every request goes through.
    pub http: reqwest::Client,
    base: String,
}

impl Edge {
    /// The gateway listening on `addr`.
    pub fn new(addr: impl std::fmt::Display) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{addr}"),
        }
    }

    /// The gateway URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path`, not sent yet, as the holder of `token`, with these `(name,
    /// value)` headers too.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> RequestBuilder {
        let request = self.http.request(method, self.url(path)).bearer_auth(token);
        headers.iter().fold(request, |request, (name, value)| {
            request.header(*name, *value)
        })
    }

    /// `method path` without a body, as the holder of `token`.
    pub async fn send(&self, method: Method, path: &str, token: &str) -> Response {
        answered(self.request(method, path, token, &[])).await
    }

    /// `GET path` as the holder of `token`.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.send(Method::GET, path, token).await
    }

    /// `GET path` as the holder of `token`, with these `(name, value)` headers too.
    pub async fn get_with(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Response {
        answered(self.request(Method::GET, path, token, headers)).await
    }

    /// `POST path` with a JSON `body`, as the holder of `token`.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        answered(self.request(Method::POST, path, token, &[]).json(body)).await
    }

    /// `POST path` with a JSON `body` and no token.
    pub async fn post_anonymous(&self, path: &str, body: &Value) -> Response {
        answered(self.http.post(self.url(path)).json(body)).await
    }

    /// `GET path` with no token.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        answered(self.http.get(self.url(path))).await
    }

    /// The OpenAPI document the gateway serves.
    pub async fn openapi(&self) -> Value {
        expect_json(self.get_anonymous("/openapi.json").await, StatusCode::OK).await
    }

    /// Signs `email` up and returns the account id and a token.
    pub async fn user(&self, email: &str) -> (String, String) {
        let created = self
            .post_anonymous(
                "/v1/users",
                &serde_json::json!({ "email": email, "displayName": "Test", "password": PASSWORD }),
            )
            .await;
        let created: Value = created.json().await.expect("sign-up JSON");
        let id = created["id"].as_str().expect("an id").to_owned();
        (id, self.token(email).await)
    }

    /// A token for `email`.
    pub async fn token(&self, email: &str) -> String {
        let response = self
            .post_anonymous(
                "/v1/auth/token",
                &serde_json::json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.as_bytes()),
            Some(&b"no-store"[..]),
            "a token response must not be cached"
        );
        let token: Value = response.json().await.expect("token JSON");
        token["accessToken"].as_str().expect("a token").to_owned()
    }
}

/// A new order: two books at 12.50 each.
pub fn two_books() -> Value {
    serde_json::json!({ "items": [{ "sku": "BOOK-1", "quantity": 2, "unitPriceCents": "1250" }] })
}

/// Sends `request`, which the gateway must answer (with any status).
pub async fn answered(request: RequestBuilder) -> Response {
    request.send().await.expect("the gateway answers")
}

/// The JSON body of `response`, which must have `status`.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let url = response.url().clone();
    let body = response.text().await.expect("a body");
    assert_eq!(actual, status, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

/// Every chunk of `response`'s body still to come, or the error that cut it off.
pub async fn remaining_chunks(response: &mut Response) -> Result<Vec<Vec<u8>>, reqwest::Error> {
    let mut chunks = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        chunks.push(chunk.to_vec());
    }
    Ok(chunks)
}

/// The text of the page at `url` (an admin page: `/metrics`).
pub async fn page(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.expect("the page answers");
    response.text().await.expect("a text body")
}

/// The `(field, description)` of each violation in a `google.rpc.BadRequest` error body.
pub fn field_violations(body: &Value) -> Vec<(String, String)> {
    let detail = &body["details"][0];
    assert_eq!(
        detail["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{body}"
    );
    let violations = detail["fieldViolations"].as_array();
    let text = |violation: &Value, key: &str| {
        let text = violation[key].as_str();
        text.unwrap_or_else(|| panic!("{key} in {violation}"))
            .to_owned()
    };
    violations
        .unwrap_or_else(|| panic!("fieldViolations in {body}"))
        .iter()
        .map(|v| (text(v, "field"), text(v, "description")))
        .collect()
}
