//! Faults on demand: added latency, an error status at a rate, or an aborted call,
//! per method, so that dashboards, alerts and runbooks can be tried against the
//! running system.
//!
//! Off and inert unless `faults.enabled` is set: then the [`FaultLayer`] is not even
//! in the server's stack and the admin port's `/faults` answers 404. When enabled, the
//! rules come from the settings and can be replaced at run time with
//! `PUT /faults` on the admin port (`GET /faults` shows them). Every injected fault is
//! counted in `faults_injected_total{kind, rpc_method}` and marked on the call's span
//! with a `fault injected` event.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use http::{Request, Response};
use platform_client::middleware::{Inner, Middleware, ResponseFuture, Wrapped, take_ready};
use serde::{Deserialize, Serialize};
use tonic::Code;
use tonic::body::Body;
use tower_layer::Layer;

use crate::rpc_layer::KnownMethods;

/// The counter of injected faults.
pub const FAULTS_INJECTED: &str = "faults_injected_total";

/// The `[faults]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Whether faults can be injected at all; the production deployments keep it off.
    pub enabled: bool,
    /// The rules in force at start.
    pub rules: Vec<FaultRule>,
}

/// What to do to the calls of some methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultRule {
    /// `package.Service/Method`, `package.Service/*`, or `*` for every method.
    pub method: String,
    /// Latency added before the call is served.
    pub delay_ms: u64,
    /// The gRPC status answered instead of serving the call (`UNAVAILABLE`, or its
    /// number), with probability `error_rate`.
    pub error_code: Option<String>,
    /// Share of the calls answered with `error_code`, 0 to 1 (1 when unset).
    pub error_rate: Option<f64>,
    /// Share of the calls cut off without any status (the HTTP/2 stream is reset, as
    /// when a process dies mid-call), 0 to 1.
    pub abort_rate: f64,
}

/// Why a rule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The method pattern is malformed.
    #[error("rule {index}: method {method:?} is not `*`, `pkg.Service/*` or `pkg.Service/Method`")]
    Method {
        /// Position of the rule.
        index: usize,
        /// What it said.
        method: String,
    },
    /// The status code is unknown or OK.
    #[error("rule {index}: error_code {code:?} is not a gRPC error code")]
    Code {
        /// Position of the rule.
        index: usize,
        /// What it said.
        code: String,
    },
    /// A rate outside 0 to 1.
    #[error("rule {index}: {field} must be between 0 and 1")]
    Rate {
        /// Position of the rule.
        index: usize,
        /// Which rate.
        field: &'static str,
    },
}

/// A rule, checked and ready to match.
#[derive(Debug, Clone)]
struct Compiled {
    rule: FaultRule,
    error: Option<(Code, f64)>,
}

impl Compiled {
    fn new(index: usize, rule: FaultRule) -> Result<Self, FaultError> {
        let method_ok = rule.method == "*"
            || rule
                .method
                .split_once('/')
                .is_some_and(|(s, m)| !s.is_empty() && !m.is_empty() && !m.contains('/'));
        if !method_ok {
            return Err(FaultError::Method {
                index,
                method: rule.method.clone(),
            });
        }
        let rate_ok = |rate: f64| (0.0..=1.0).contains(&rate);
        if !rate_ok(rule.abort_rate) {
            return Err(FaultError::Rate {
                index,
                field: "abort_rate",
            });
        }
        let error = match &rule.error_code {
            None => None,
            Some(text) => {
                let code = parse_code(text).ok_or_else(|| FaultError::Code {
                    index,
                    code: text.clone(),
                })?;
                let rate = rule.error_rate.unwrap_or(1.0);
                if !rate_ok(rate) {
                    return Err(FaultError::Rate {
                        index,
                        field: "error_rate",
                    });
                }
                Some((code, rate))
            }
        };
        Ok(Self { rule, error })
    }

    fn matches(&self, service: &str, method: &str) -> bool {
        let pattern = &self.rule.method;
        pattern == "*"
            || pattern
                .split_once('/')
                .is_some_and(|(s, m)| s == service && (m == "*" || m == method))
    }
}

/// A gRPC code by name (`UNAVAILABLE`, `unavailable`) or number; never OK.
fn parse_code(text: &str) -> Option<Code> {
    let code = match text.parse::<i32>() {
        Ok(number) if (1..=16).contains(&number) => Code::from_i32(number),
        Ok(_) => return None,
        Err(_) => {
            let wanted = text.to_ascii_uppercase();
            (1..=16)
                .map(Code::from_i32)
                .find(|code| format!("{code:?}").to_ascii_uppercase() == wanted.replace('_', ""))?
        }
    };
    Some(code)
}

/// The rules in force, shared by the server's layer and the admin port.
#[derive(Debug, Clone)]
pub struct Faults {
    rules: Arc<RwLock<Arc<Vec<Compiled>>>>,
}

impl Faults {
    /// The faults of `settings`, or `None` when fault injection is disabled.
    pub fn from_settings(settings: &FaultSettings) -> Result<Option<Self>, FaultError> {
        if !settings.enabled {
            return Ok(None);
        }
        let faults = Self {
            rules: Arc::default(),
        };
        faults.replace(settings.rules.clone())?;
        Ok(Some(faults))
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<FaultRule> {
        self.current().iter().map(|c| c.rule.clone()).collect()
    }

    /// Replaces every rule at once; nothing changes when one is invalid.
    pub fn replace(&self, rules: Vec<FaultRule>) -> Result<(), FaultError> {
        let compiled = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| Compiled::new(index, rule))
            .collect::<Result<Vec<_>, _>>()?;
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
        tracing::warn!(rules = ?self.rules(), "fault injection rules replaced");
        Ok(())
    }

    fn current(&self) -> Arc<Vec<Compiled>> {
        Arc::clone(&self.rules.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// What to do to one call of `service`/`method`.
    fn decide(&self, service: &str, method: &str) -> Decision {
        let rules = self.current();
        let Some(rule) = rules.iter().find(|r| r.matches(service, method)) else {
            return Decision::default();
        };
        Decision {
            delay: Duration::from_millis(rule.rule.delay_ms),
            abort: rule.rule.abort_rate > 0.0 && fastrand::f64() < rule.rule.abort_rate,
            error: rule
                .error
                .and_then(|(code, rate)| (fastrand::f64() < rate).then_some(code)),
        }
    }
}

#[derive(Debug, Default)]
struct Decision {
    delay: Duration,
    abort: bool,
    error: Option<Code>,
}

/// Injects the [`Faults`] into the calls of the server it wraps.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    faults: Faults,
    known: KnownMethods,
}

impl FaultLayer {
    /// Injects `faults`; `known` bounds the metric's `rpc_method` label.
    pub fn new(faults: Faults, known: KnownMethods) -> Self {
        Self { faults, known }
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Wrapped<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wrapped::new(self.clone(), inner)
    }
}

impl<S: Inner<B>, B: Send + 'static> Middleware<S, B> for FaultLayer {
    fn call(&self, inner: &mut S, request: Request<B>) -> ResponseFuture<S::Error> {
        let path = request.uri().path();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let decision = self.faults.decide(service, method);
        let (_, label) = self.known.labels(service, method);
        let mut inner = take_ready(inner);
        Box::pin(async move {
            if !decision.delay.is_zero() {
                injected("delay", &label);
                tokio::time::sleep(decision.delay).await;
            }
            if decision.abort {
                injected("abort", &label);
                return Ok(aborted());
            }
            if let Some(code) = decision.error {
                injected("error", &label);
                return Ok(tonic::Status::new(code, "injected fault").into_http());
            }
            inner.call(request).await
        })
    }
}

fn injected(kind: &'static str, method: &str) {
    tracing::info!(fault.kind = kind, "fault injected");
    metrics::counter!(FAULTS_INJECTED, "kind" => kind, "rpc_method" => method.to_owned())
        .increment(1);
}

/// A response whose body fails at once: the client sees its stream reset, with no
/// gRPC status.
fn aborted() -> Response<Body> {
    let failing = http_body_util::StreamBody::new(futures_util::stream::once(async {
        Err::<http_body::Frame<bytes::Bytes>, tonic::Status>(tonic::Status::aborted(
            "injected abort",
        ))
    }));
    let mut response = Response::new(Body::new(failing));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: &str) -> FaultRule {
        FaultRule {
            method: method.to_owned(),
            ..FaultRule::default()
        }
    }

    #[test]
    fn codes_by_name_or_number_never_ok() {
        assert_eq!(parse_code("UNAVAILABLE"), Some(Code::Unavailable));
        assert_eq!(
            parse_code("resource_exhausted"),
            Some(Code::ResourceExhausted)
        );
        assert_eq!(parse_code("14"), Some(Code::Unavailable));
        assert_eq!(parse_code("OK"), None);
        assert_eq!(parse_code("0"), None);
        assert_eq!(parse_code("17"), None);
        assert_eq!(parse_code("nope"), None);
    }

    #[test]
    fn patterns_and_rates_are_checked() {
        for bad in ["", "users.v1.UserService", "/GetUser", "a/b/c"] {
            assert!(Compiled::new(0, rule(bad)).is_err(), "{bad:?}");
        }
        let mut too_much = rule("*");
        too_much.abort_rate = 1.5;
        assert!(Compiled::new(0, too_much).is_err());
        let mut bad_code = rule("*");
        bad_code.error_code = Some("OK".to_owned());
        assert!(Compiled::new(0, bad_code).is_err());
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let a = Compiled::new(0, rule("users.v1.UserService/GetUser")).unwrap();
        assert!(a.matches("users.v1.UserService", "GetUser"));
        assert!(!a.matches("users.v1.UserService", "ListUsers"));
        let any = Compiled::new(0, rule("users.v1.UserService/*")).unwrap();
        assert!(any.matches("users.v1.UserService", "ListUsers"));
        assert!(!any.matches("orders.v1.OrderService", "GetOrder"));
        assert!(Compiled::new(0, rule("*")).unwrap().matches("x", "y"));
    }

    #[test]
    fn disabled_is_none() {
        let settings = FaultSettings {
            enabled: false,
            rules: vec![rule("*")],
        };
        assert!(Faults::from_settings(&settings).unwrap().is_none());
    }
}
