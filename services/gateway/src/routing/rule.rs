//! Reading a method's `google.api.http` option (a `google.api.HttpRule`, decoded
//! dynamically) into plain bindings: HTTP method, path template text, body and
//! response body. The primary rule comes first, its `additional_bindings` after.

use http::Method;
use prost_reflect::DynamicMessage;

use super::RouteError;

/// One HTTP binding of a method, as written in the rule; checked later by the table.
#[derive(Debug, Clone)]
pub(crate) struct HttpBinding {
    pub(crate) http_method: Method,
    pub(crate) path: String,
    pub(crate) body: String,
    pub(crate) response_body: String,
}

/// The standard verbs of the rule's `pattern` oneof, by field name.
const STANDARD: [(&str, Method); 5] = [
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("patch", Method::PATCH),
];

/// Every binding of `rule`, the rule itself first.
pub(crate) fn read(rule: &DynamicMessage, method: &str) -> Result<Vec<HttpBinding>, RouteError> {
    let mut bindings = vec![read_one(rule, method)?];
    for nested in messages(rule, "additional_bindings") {
        // `http.proto`: "the nesting may only be one level deep".
        if messages(&nested, "additional_bindings").next().is_some() {
            return Err(RouteError::InvalidRule {
                method: method.to_owned(),
                reason: "additional_bindings must not contain additional_bindings".to_owned(),
            });
        }
        bindings.push(read_one(&nested, method)?);
    }
    Ok(bindings)
}

fn read_one(rule: &DynamicMessage, method: &str) -> Result<HttpBinding, RouteError> {
    let (http_method, path) = pattern(rule, method)?;
    Ok(HttpBinding {
        http_method,
        path,
        body: text(rule, "body"),
        response_body: text(rule, "response_body"),
    })
}

fn pattern(rule: &DynamicMessage, method: &str) -> Result<(Method, String), RouteError> {
    for (name, http_method) in STANDARD {
        if rule.has_field_by_name(name) {
            return Ok((http_method, text(rule, name)));
        }
    }
    if rule.has_field_by_name("custom") {
        let custom = rule
            .get_field_by_name("custom")
            .and_then(|v| v.as_message().cloned())
            .ok_or_else(|| RouteError::InvalidRule {
                method: method.to_owned(),
                reason: "`custom` is not a CustomHttpPattern".to_owned(),
            })?;
        let kind = text(&custom, "kind");
        let http_method =
            Method::from_bytes(kind.as_bytes()).map_err(|_| RouteError::InvalidHttpMethod {
                method: method.to_owned(),
                kind: kind.clone(),
            })?;
        return Ok((http_method, text(&custom, "path")));
    }
    Err(RouteError::InvalidRule {
        method: method.to_owned(),
        reason: "the rule sets no HTTP method and path (get, put, post, delete, patch or custom)"
            .to_owned(),
    })
}

/// A string field of the rule; "" when unset, which is also its meaning when unset.
fn text(message: &DynamicMessage, name: &str) -> String {
    message
        .get_field_by_name(name)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The elements of a repeated message field.
fn messages(message: &DynamicMessage, name: &str) -> impl Iterator<Item = DynamicMessage> {
    let list = message
        .get_field_by_name(name)
        .and_then(|v| v.as_list().map(<[_]>::to_vec))
        .unwrap_or_default();
    list.into_iter().filter_map(|v| v.as_message().cloned())
}
