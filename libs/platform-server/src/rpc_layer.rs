//! A tower layer that observes every gRPC call a server answers.
//!
//! Per call it opens a server span named `package.Service/Method` with the
//! OpenTelemetry RPC attributes (`rpc.system`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`), continuing the caller's W3C trace context; it counts the
//! call and its latency by method and status code in Prometheus; and it writes one
//! access-log line. Health checks and reflection are passed through untouched, so
//! probes make no spans and no noise.
//!
//! A gRPC status arrives in the response headers (trailers-only answers, usually
//! errors) or in the trailers after the body, so the response body is wrapped and the
//! call is recorded when the body ends, or when it is dropped unfinished (cancelled or
//! past its deadline).
//!
//! Metric labels name only methods the server really serves ([`KnownMethods`]); any
//! other path is labelled `unknown`, so a client sending junk paths cannot create an
//! unbounded number of series.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::{Request, Response};
use metrics::{Counter, Gauge, Histogram};
use tonic::Code;
use tonic::body::Body;
use tower_layer::Layer;
use tracing::Instrument;

use platform_client::body::{Outcome, StatusBody, split_path, status_in};
use platform_client::handles::ByCode;
use platform_client::middleware::{Inner, Middleware, ResponseFuture, Wrapped};

/// Metric names, in the Prometheus form of the OpenTelemetry RPC conventions.
pub mod names {
    /// Counter of finished calls, by service, method and status code.
    pub const REQUESTS: &str = "rpc_server_requests_total";
    /// Histogram of call durations in seconds, by service, method and status code.
    pub const DURATION: &str = "rpc_server_call_duration_seconds";
    /// Gauge of calls in flight, by service and method.
    pub const ACTIVE: &str = "rpc_server_active_requests";
}

/// Paths that are infrastructure, not traffic.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.")
}

/// The label given to a service or method the server does not serve.
pub const UNKNOWN: &str = "unknown";

/// A method as the server's metrics name it, with its metric handles, each made on
/// first use.
#[derive(Debug)]
pub struct Method {
    service: String,
    method: String,
    active: OnceLock<Gauge>,
    answered: ByCode<(Counter, Histogram)>,
}

impl Method {
    fn new(service: &str, method: &str) -> Arc<Self> {
        Arc::new(Self {
            service: service.to_owned(),
            method: method.to_owned(),
            active: OnceLock::new(),
            answered: ByCode::default(),
        })
    }

    fn labels(&self) -> (String, String) {
        (self.service.clone(), self.method.clone())
    }

    /// Its calls in flight.
    fn active(&self) -> &Gauge {
        self.active.get_or_init(|| {
            let (service, method) = self.labels();
            metrics::gauge!(names::ACTIVE, "rpc_service" => service, "rpc_method" => method)
        })
    }

    /// Its calls answered with `code`, and their durations.
    fn answered(&self, code: Code) -> (Counter, Histogram) {
        self.answered.get(code, || {
            let (service, method) = self.labels();
            let labels = [
                ("rpc_system", "grpc".to_owned()),
                ("rpc_service", service),
                ("rpc_method", method),
                ("rpc_grpc_status_code", (code as i32).to_string()),
            ];
            (
                metrics::counter!(names::REQUESTS, &labels),
                metrics::histogram!(names::DURATION, &labels),
            )
        })
    }
}

/// The methods of one served service, and what its unknown methods count as.
#[derive(Debug)]
struct Served {
    methods: HashMap<String, Arc<Method>>,
    unknown: Arc<Method>,
}

/// The methods a server answers, read from the descriptors, as metrics name them.
#[derive(Debug, Clone)]
pub struct KnownMethods {
    services: Arc<HashMap<String, Served>>,
    unknown: Arc<Method>,
}

impl Default for KnownMethods {
    fn default() -> Self {
        Self {
            services: Arc::default(),
            unknown: Method::new(UNKNOWN, UNKNOWN),
        }
    }
}

impl KnownMethods {
    /// Every method of the named services that the platform's descriptor pool
    /// describes.
    pub fn of_services(names: &[&str]) -> Self {
        Self::from_pool(platform_proto::descriptor_pool(), names)
    }

    /// Every method of the named services in `pool`; a name the pool lacks adds none.
    pub fn from_pool(pool: &prost_reflect::DescriptorPool, names: &[&str]) -> Self {
        let services = names
            .iter()
            .filter_map(|name| pool.get_service_by_name(name))
            .map(|service| {
                let name = service.full_name();
                let methods = service
                    .methods()
                    .map(|method| (method.name().to_owned(), Method::new(name, method.name())))
                    .collect();
                let unknown = Method::new(name, UNKNOWN);
                (name.to_owned(), Served { methods, unknown })
            })
            .collect();
        Self {
            services: Arc::new(services),
            ..Self::default()
        }
    }

    /// A call to `service`/`method` as metrics name it: itself when served, else
    /// `unknown` for both (an unknown service) or for the method alone.
    pub fn method(&self, service: &str, method: &str) -> &Arc<Method> {
        match self.services.get(service) {
            Some(served) => served.methods.get(method).unwrap_or(&served.unknown),
            None => &self.unknown,
        }
    }

    /// The metric labels of a call to `service`/`method`, as [`KnownMethods::method`]
    /// names it.
    pub fn labels(&self, service: &str, method: &str) -> (String, String) {
        self.method(service, method).labels()
    }
}

/// Observes every call of the tonic server it wraps, as the [module docs](self) say.
#[derive(Debug, Clone)]
pub struct RpcLayer {
    default_timeout: Option<Duration>,
    known: KnownMethods,
}

impl RpcLayer {
    /// `default_timeout` is the server's own bound on a call (to tell a deadline from a
    /// cancellation when a call is abandoned); `known` are the methods served, the
    /// only ones metric labels name.
    pub fn new(default_timeout: Option<Duration>, known: KnownMethods) -> Self {
        Self {
            default_timeout,
            known,
        }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = Wrapped<Self, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Wrapped::new(self.clone(), inner)
    }
}

impl<S: Inner<B>, B: Send + 'static> Middleware<S, B> for RpcLayer {
    fn call(&self, inner: &mut S, mut request: Request<B>) -> ResponseFuture<S::Error> {
        let path = request.uri().path();
        if is_infrastructure(path) {
            return Box::pin(inner.call(request));
        }
        let (service, method) = split_path(path);
        let span = platform_client::rpc_span!("grpc.server", "server", service, method);
        let method = Arc::clone(self.known.method(service, method));
        // A missing or malformed traceparent simply starts a new trace.
        platform_telemetry::propagation::continue_trace(&span, request.headers());

        let deadline = crate::deadline::client_timeout(request.headers())
            .into_iter()
            .chain(self.default_timeout)
            .min();
        if let Some(budget) = deadline {
            request
                .extensions_mut()
                .insert(crate::deadline::Deadline::after(budget));
        }
        let call = Call::start(span.clone(), method, deadline);
        let future = inner.call(request);
        Box::pin(
            async move {
                let response = future.await?;
                let (parts, body) = response.into_parts();
                let mut call = call;
                call.code = status_in(&parts.headers);
                // The call records itself when dropped: at the end of the stream, or
                // when the client goes away first.
                let body = Body::new(StatusBody::new(body, move |outcome| {
                    let mut call = call;
                    match outcome {
                        Outcome::Trailers(trailers) => {
                            if let Some(code) = status_in(trailers) {
                                call.code = Some(code);
                            }
                        }
                        Outcome::Failed(code) => call.code = Some(code),
                        Outcome::Ended => {
                            call.code.get_or_insert(Code::Ok);
                        }
                    }
                }));
                Ok(Response::from_parts(parts, body))
            }
            .instrument(span),
        )
    }
}

/// One call in flight; records itself when dropped.
struct Call {
    span: tracing::Span,
    method: Arc<Method>,
    started: Instant,
    deadline: Option<Duration>,
    code: Option<Code>,
}

impl Call {
    fn start(span: tracing::Span, method: Arc<Method>, deadline: Option<Duration>) -> Self {
        method.active().increment(1.0);
        Self {
            span,
            method,
            started: Instant::now(),
            deadline,
            code: None,
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        let code = self.code.unwrap_or_else(|| {
            // Abandoned before a status was sent: tonic's timeout fired, or the client
            // went away.
            match self.deadline {
                Some(deadline) if elapsed + Duration::from_millis(5) >= deadline => {
                    Code::DeadlineExceeded
                }
                _ => Code::Cancelled,
            }
        });
        let code_num = code as i32;
        self.method.active().decrement(1.0);
        let (requests, duration) = self.method.answered(code);
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());

        self.span.record("rpc.grpc.status_code", code_num);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        let _entered = self.span.enter();
        tracing::info!(
            target: "access",
            service = %self.method.service,
            method = %self.method.method,
            code = ?code,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "rpc finished"
        );
    }
}

/// The codes OpenTelemetry counts as a server's own failure; the rest are the caller's.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labelled_by_name() {
        let known = KnownMethods::of_services(&["users.v1.UserService"]);
        assert_eq!(
            known.labels("users.v1.UserService", "GetUser"),
            ("users.v1.UserService".to_owned(), "GetUser".to_owned())
        );
        assert_eq!(
            known.labels("users.v1.UserService", "NoSuchMethod"),
            ("users.v1.UserService".to_owned(), UNKNOWN.to_owned())
        );
        // Served by no one here, even if the platform knows it.
        assert_eq!(
            known.labels("orders.v1.OrderService", "GetOrder"),
            (UNKNOWN.to_owned(), UNKNOWN.to_owned())
        );
        assert_eq!(
            known.labels("x/../../etc", "passwd"),
            (UNKNOWN.to_owned(), UNKNOWN.to_owned())
        );
    }

    #[test]
    fn only_server_faults_are_span_errors() {
        assert!(is_server_error(Code::Internal));
        assert!(is_server_error(Code::Unavailable));
        assert!(!is_server_error(Code::NotFound));
        assert!(!is_server_error(Code::InvalidArgument));
        assert!(!is_server_error(Code::Unauthenticated));
    }
}
