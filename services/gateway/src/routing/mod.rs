//! HTTP routes derived from `google.api.http` annotations: path templates, the route
//! table built from a descriptor pool, and request matching.
//!
//! - [`template`]: the path template grammar and its compiled form.
//! - [`table`]: [`RouteTable`], its build-time checks, and [`RouteTable::find`].

mod path;
mod rule;
pub mod table;
pub mod template;

pub use table::{BodyRule, HTTP_RULE_EXTENSION, Route, RouteError, RouteMatch, RouteTable};
pub use template::{PathTemplate, Segment, TemplateError, Variable};
