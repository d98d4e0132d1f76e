//! The route table: every `google.api.http` binding of the given services, checked
//! against the method's messages when the table is built, and stored in a segment
//! trie for matching.
//!
//! # Matching
//!
//! The trie has one level per template segment. A node has a map of literal children,
//! one `*` child, the routes whose template ends there, and the routes whose template
//! ends there with `**`. Templates with the same shape (segments and verb, variable
//! names aside) land on the same node, which is how conflicts are found at build time.
//!
//! A request path is split on `/`, each segment percent-decoded, and walked depth
//! first. Each trie node sits at a fixed depth and so is compared with one fixed
//! segment: a lookup visits every node at most once, and at each node costs one hash
//! lookup. The cost grows with the path's length and with how many templates share
//! its prefix, not with the size of the table.
//!
//! # Precedence
//!
//! Among the routes for the request's HTTP method that match the path:
//!
//! 1. A reading of the path with a custom verb (`/v1/orders/1:cancel` → verb `cancel`)
//!    wins over the plain reading (segment `1:cancel`), which is tried only when no
//!    verb route of this HTTP method matches.
//! 2. Then, at the first segment where two templates differ, a literal beats `*`, and
//!    `*` beats `**`; a template that ends beats one whose `**` matches nothing.
//!    So `/v1/users/me` wins over `/v1/users/{id}` for `/v1/users/me`, and
//!    `/v1/users/{id}` still answers `/v1/users/you`.
//!
//! Templates of one HTTP method that match exactly the same paths are rejected when
//! the table is built, so the order above is total and the answer deterministic.
//!
//! When no route of the request's method matches but routes of other methods do, the
//! answer is [`RouteMatch::MethodNotAllowed`] listing those methods (for `Allow`).
//!
//! `*` and variables never match an empty segment (`/v1/users/` is not `GetUser` with an
//! empty id); `**` matches any rest, empty included. A segment whose percent-decoding is
//! not UTF-8 matches no literal and no variable.

use std::fmt;
use std::sync::Arc;

use http::Method;
use prost_reflect::{DescriptorPool, FieldDescriptor, MethodDescriptor, ServiceDescriptor};

use super::path::RequestPath;
use super::rule::{self, HttpBinding};
use super::template::{PathTemplate, Segment, TemplateError};
use crate::edge::RouteMetrics;
use crate::fields::{self, Naming, PathError};

/// Full name of the method option the routes come from.
pub const HTTP_RULE_EXTENSION: &str = "google.api.http";

/// What the HTTP request body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRule {
    /// No `body`: the request has no body; path and query fill the message.
    None,
    /// `body: "*"`: the body is the whole request message (less path-bound fields).
    Whole,
    /// `body: "field"`: the body is the value of this top-level request field.
    Field(FieldDescriptor),
}

/// One HTTP binding of one gRPC method.
#[derive(Debug, Clone)]
pub struct Route {
    http_method: Method,
    template: PathTemplate,
    method: MethodDescriptor,
    body: BodyRule,
    response_body: Option<FieldDescriptor>,
    idempotency_key: Option<FieldDescriptor>,
    grpc_path: String,
    binding_index: usize,
    metrics: RouteMetrics,
}

impl Route {
    /// The HTTP method this route answers.
    pub fn http_method(&self) -> &Method {
        &self.http_method
    }

    /// The path template.
    pub fn template(&self) -> &PathTemplate {
        &self.template
    }

    /// The gRPC method called.
    pub fn method(&self) -> &MethodDescriptor {
        &self.method
    }

    /// What the request body holds.
    pub fn body(&self) -> &BodyRule {
        &self.body
    }

    /// The top-level response field sent as the HTTP body instead of the whole
    /// response message (`response_body`), if any.
    pub fn response_body(&self) -> Option<&FieldDescriptor> {
        self.response_body.as_ref()
    }

    /// The request's singular string `request_id` field, if it has one: the
    /// idempotency key a service answers a repeat with the first result for.
    pub fn idempotency_key(&self) -> Option<&FieldDescriptor> {
        self.idempotency_key.as_ref()
    }

    /// The gRPC request path, `/package.Service/Method`.
    pub fn grpc_path(&self) -> &str {
        &self.grpc_path
    }

    /// 0 for the method's main rule, `n` for its `n`-th `additional_bindings` entry.
    pub fn binding_index(&self) -> usize {
        self.binding_index
    }

    /// The handles of the route's request metrics.
    pub(crate) fn metrics(&self) -> &RouteMetrics {
        &self.metrics
    }

    fn new(
        method: &MethodDescriptor,
        binding: HttpBinding,
        binding_index: usize,
    ) -> Result<Self, RouteError> {
        let method_name = method.full_name().to_owned();
        let template =
            PathTemplate::parse(&binding.path).map_err(|source| RouteError::Template {
                method: method_name.clone(),
                source,
            })?;

        let input = method.input();
        for variable in template.variables() {
            let invalid = |reason: &'static str| RouteError::InvalidVariable {
                method: method_name.clone(),
                template: template.as_str().to_owned(),
                field: variable.field_path().to_owned(),
                reason,
            };
            let path = fields::resolve(&input, variable.field_path(), Naming::Proto).map_err(
                |e| match e {
                    PathError::Unknown { .. } => invalid("does not name a field of the request"),
                    PathError::NotAMessage { .. } | PathError::ThroughRepeated { .. } => {
                        invalid("goes through a field that is not a singular message")
                    }
                },
            )?;
            let Some(leaf) = path.last() else {
                return Err(invalid("is empty"));
            };
            if leaf.is_list() || leaf.is_map() {
                return Err(invalid("names a repeated or map field"));
            }
            if !fields::is_text_kind(leaf) {
                return Err(invalid("names a message field"));
            }
        }

        let body = match binding.body.as_str() {
            "" => BodyRule::None,
            "*" => BodyRule::Whole,
            name => BodyRule::Field(input.get_field_by_name(name).ok_or_else(|| {
                RouteError::InvalidBody {
                    method: method_name.clone(),
                    body: name.to_owned(),
                    input: input.full_name().to_owned(),
                }
            })?),
        };

        let output = method.output();
        let response_body = match binding.response_body.as_str() {
            "" => None,
            name => Some(output.get_field_by_name(name).ok_or_else(|| {
                RouteError::InvalidResponseBody {
                    method: method_name.clone(),
                    field: name.to_owned(),
                    output: output.full_name().to_owned(),
                }
            })?),
        };

        Ok(Self {
            http_method: binding.http_method,
            template,
            grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
            method: method.clone(),
            body,
            response_body,
            idempotency_key: input
                .get_field_by_name("request_id")
                .filter(|field| field.kind() == prost_reflect::Kind::String && !field.is_list()),
            binding_index,
            metrics: RouteMetrics::default(),
        })
    }

    /// `GET /v1/x/{id} (pkg.Service.Method)`, for error messages.
    fn describe(&self) -> String {
        format!(
            "{} {} ({})",
            self.http_method,
            self.template,
            self.method.full_name()
        )
    }
}

/// The outcome of [`RouteTable::find`].
#[derive(Debug, Clone)]
pub enum RouteMatch {
    /// A route answers; `bindings` are its path variables, `(field path, value)` in
    /// template order, values percent-decoded (multi-segment ones keep `%2F`).
    Found {
        /// The route.
        route: Arc<Route>,
        /// `(dotted proto field path, decoded value)` for each variable.
        bindings: Vec<(String, String)>,
    },
    /// Routes match the path, but none with the request's method: answer `405` with
    /// these in `Allow`.
    MethodNotAllowed {
        /// The methods that would match, sorted (GET, HEAD, POST, PUT, PATCH, DELETE,
        /// then others alphabetically), without duplicates.
        allowed: Vec<Method>,
    },
    /// No route matches the path.
    NotFound,
}

/// Why a route table cannot be built. Each variant names the gRPC method(s) whose
/// annotation is at fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// The pool lacks `google/api/annotations.proto`, so no rule can be read.
    #[error(
        "the descriptor pool has no `google.api.http` extension (google/api/annotations.proto is missing)"
    )]
    MissingHttpExtension,
    /// The rule is malformed in a way the table cannot use.
    #[error("{method}: invalid google.api.http rule: {reason}")]
    InvalidRule {
        /// Full name of the gRPC method.
        method: String,
        /// What is wrong.
        reason: String,
    },
    /// `custom.kind` is not a valid HTTP method token.
    #[error("{method}: {kind:?} is not a valid HTTP method")]
    InvalidHttpMethod {
        /// Full name of the gRPC method.
        method: String,
        /// The `custom.kind` text.
        kind: String,
    },
    /// The path template does not parse.
    #[error("{method}: {source}")]
    Template {
        /// Full name of the gRPC method.
        method: String,
        /// The parse error, naming the template.
        #[source]
        source: TemplateError,
    },
    /// A path variable names no settable field of the request message.
    #[error("{method}: path variable {field:?} in {template:?} {reason}")]
    InvalidVariable {
        /// Full name of the gRPC method.
        method: String,
        /// The template text.
        template: String,
        /// The variable's field path.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `body` is neither `*` nor a top-level field of the request.
    #[error("{method}: body {body:?} is not \"*\" or a top-level field of {input}")]
    InvalidBody {
        /// Full name of the gRPC method.
        method: String,
        /// The `body` text.
        body: String,
        /// Full name of the request message.
        input: String,
    },
    /// `response_body` is not a top-level field of the response.
    #[error("{method}: response_body {field:?} is not a top-level field of {output}")]
    InvalidResponseBody {
        /// Full name of the gRPC method.
        method: String,
        /// The `response_body` text.
        field: String,
        /// Full name of the response message.
        output: String,
    },
    /// Two routes of one HTTP method match exactly the same paths.
    #[error("conflicting routes: {first} and {second} match the same requests")]
    Conflict {
        /// The route registered first: `METHOD /template (pkg.Service.Method)`.
        first: String,
        /// The route that collides with it, same form.
        second: String,
    },
}

/// One trie node; see the module documentation.
#[derive(Debug, Default)]
struct Node {
    literals: foldhash::HashMap<String, Node>,
    single: Option<Box<Node>>,
    /// Routes whose template ends here.
    end: Vec<usize>,
    /// Routes whose template ends here with `**`.
    multi: Vec<usize>,
}

/// Every route of a set of services, ready for matching.
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
    root: Node,
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The trie is an index over `routes`; listing the routes says it all.
        f.debug_list()
            .entries(self.routes.iter().map(|r| r.describe()))
            .finish()
    }
}

impl RouteTable {
    /// Reads the `google.api.http` rule of every method of `services` (methods without
    /// one are not routed), checks each binding against the method's messages, and
    /// rejects conflicting routes. `pool` must contain `google/api/annotations.proto`.
    pub fn build(
        pool: &DescriptorPool,
        services: impl IntoIterator<Item = ServiceDescriptor>,
    ) -> Result<Self, RouteError> {
        let extension = pool
            .get_extension_by_name(HTTP_RULE_EXTENSION)
            .ok_or(RouteError::MissingHttpExtension)?;
        let mut table = Self {
            routes: Vec::new(),
            root: Node::default(),
        };
        for service in services {
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&extension) {
                    continue;
                }
                if method.is_client_streaming() {
                    // One request body cannot feed a stream of requests: the method is
                    // left out (of the routes and the OpenAPI document), and the rest
                    // is served.
                    tracing::warn!(
                        method = method.full_name(),
                        "client-streaming method not exposed over HTTP"
                    );
                    continue;
                }
                let value = options.get_extension(&extension);
                let rule = value.as_message().ok_or_else(|| RouteError::InvalidRule {
                    method: method.full_name().to_owned(),
                    reason: "the option is not a google.api.HttpRule message".to_owned(),
                })?;
                for (index, binding) in rule::read(rule, method.full_name())?
                    .into_iter()
                    .enumerate()
                {
                    table.insert(Route::new(&method, binding, index)?)?;
                }
            }
        }
        Ok(table)
    }

    /// Every route, in the order the services and methods were given.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(Arc::as_ref)
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Finds the route for `method` and `path` (the URI path: no query, still
    /// percent-encoded). See the module documentation for the precedence rules.
    pub fn find(&self, method: &Method, path: &str) -> RouteMatch {
        let Some((with_verb, plain)) = RequestPath::parse(path) else {
            return RouteMatch::NotFound;
        };
        let mut allowed: Vec<Method> = Vec::new();
        for reading in with_verb.iter().chain(std::iter::once(&plain)) {
            let mut candidates = Vec::new();
            self.collect(&self.root, reading, 0, &mut candidates);
            for index in candidates {
                let Some(route) = self.routes.get(index) else {
                    continue;
                };
                if route.http_method != *method {
                    allowed.push(route.http_method.clone());
                } else if let Some(bindings) = bind(&route.template, reading) {
                    return RouteMatch::Found {
                        route: Arc::clone(route),
                        bindings,
                    };
                }
            }
        }
        if allowed.is_empty() {
            return RouteMatch::NotFound;
        }
        allowed.sort_by(|a, b| method_order(a).cmp(&method_order(b)));
        allowed.dedup();
        RouteMatch::MethodNotAllowed { allowed }
    }

    fn insert(&mut self, route: Route) -> Result<(), RouteError> {
        let index = self.routes.len();
        let (segments, verb) = route.template.shape();
        let mut node = &mut self.root;
        let mut ends_with_multi = false;
        for segment in segments {
            node = match segment {
                Segment::Literal(text) => node.literals.entry(text.clone()).or_default(),
                Segment::Single => node.single.get_or_insert_with(Box::default),
                Segment::Multi => {
                    // `**` is always last (the parser guarantees it).
                    ends_with_multi = true;
                    break;
                }
            };
        }
        let slot = if ends_with_multi {
            &mut node.multi
        } else {
            &mut node.end
        };
        // Same node and same verb means the same shape: the same set of paths.
        if let Some(other) = slot
            .iter()
            .filter_map(|&i| self.routes.get(i))
            .find(|other| other.http_method == route.http_method && other.template.verb() == verb)
        {
            return Err(RouteError::Conflict {
                first: other.describe(),
                second: route.describe(),
            });
        }
        slot.push(index);
        self.routes.push(Arc::new(route));
        Ok(())
    }

    /// Appends to `out`, best first, every route (of any HTTP method) whose template
    /// matches `path` from segment `depth` on, below `node`.
    fn collect(&self, node: &Node, path: &RequestPath<'_>, depth: usize, out: &mut Vec<usize>) {
        let verb = path.verb();
        let same_verb = |i: &&usize| {
            self.routes
                .get(**i)
                .is_some_and(|r| r.template.verb() == verb)
        };
        let segments = path.segments();
        match segments.get(depth) {
            None => out.extend(node.end.iter().filter(same_verb)),
            Some(segment) => {
                if let Some(text) = segment.decoded() {
                    if let Some(child) = node.literals.get(text) {
                        self.collect(child, path, depth + 1, out);
                    }
                    if let Some(child) = &node.single
                        && !text.is_empty()
                    {
                        self.collect(child, path, depth + 1, out);
                    }
                }
            }
        }
        if !node.multi.is_empty()
            && segments
                .get(depth..)
                .is_some_and(|rest| rest.iter().all(|s| s.decoded().is_some()))
        {
            out.extend(node.multi.iter().filter(same_verb));
        }
    }
}

/// The variables' values for a path the template is known to match.
fn bind(template: &PathTemplate, path: &RequestPath<'_>) -> Option<Vec<(String, String)>> {
    let segments = template.segments();
    let ends_with_multi = segments.last() == Some(&Segment::Multi);
    template
        .variables()
        .iter()
        .map(|variable| {
            let range = variable.segments();
            let value = if template.is_single_segment(variable) {
                path.decoded(range.start)?.to_owned()
            } else {
                // Template and path segments line up one to one, except that a final
                // `**` takes every remaining path segment.
                let end = if ends_with_multi && range.end == segments.len() {
                    path.segments().len()
                } else {
                    range.end
                };
                path.joined_keeping_slashes(range.start..end)?
            };
            Some((variable.field_path().to_owned(), value))
        })
        .collect()
}

/// The order of methods in an `Allow` list.
fn method_order(method: &Method) -> (u8, &str) {
    let rank = match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    };
    (rank, method.as_str())
}
