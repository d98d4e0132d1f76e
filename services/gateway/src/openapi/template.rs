//! How a route's path template is written in the document: its OpenAPI path
//! (`/v1/{name}`, `/v1/orders/{id}:cancel`), the names of the parameters it holds,
//! and the pattern of a variable that spans several segments.

use crate::routing::{PathTemplate, Segment, Variable};

/// One piece of a template as the document shows it.
pub(super) enum PathPart<'a> {
    Literal(&'a str),
    Variable(&'a Variable),
    /// A `*` (or, with `multi`, `**`) outside any variable: `{wildcard-N}`.
    Wildcard {
        number: usize,
        multi: bool,
    },
}

/// The template's segments with each variable's own segments folded into it.
pub(super) fn path_parts(template: &PathTemplate) -> Vec<PathPart<'_>> {
    let segments = template.segments();
    let mut parts = Vec::new();
    let mut wildcards = 0;
    let mut index = 0;
    while let Some(segment) = segments.get(index) {
        if let Some(variable) = template
            .variables()
            .iter()
            .find(|v| v.segments().start == index)
        {
            parts.push(PathPart::Variable(variable));
            // A variable covers at least one segment; `max` guards the loop anyway.
            index = variable.segments().end.max(index + 1);
            continue;
        }
        parts.push(match segment {
            Segment::Literal(text) => PathPart::Literal(text),
            Segment::Single | Segment::Multi => {
                wildcards += 1;
                PathPart::Wildcard {
                    number: wildcards,
                    multi: *segment == Segment::Multi,
                }
            }
        });
        index += 1;
    }
    parts
}

/// The parameter name of the `number`-th wildcard. `-` cannot occur in a proto field
/// path, so it never collides with a variable's.
pub(super) fn wildcard_name(number: usize) -> String {
    format!("wildcard-{number}")
}

/// The OpenAPI path of a template: `/v1/{name}`, `/v1/orders/{id}:cancel`.
pub(super) fn render_path(template: &PathTemplate) -> String {
    let mut path = String::new();
    for part in path_parts(template) {
        path.push('/');
        match part {
            PathPart::Literal(text) => path.push_str(text),
            PathPart::Variable(variable) => {
                path.push('{');
                path.push_str(variable.field_path());
                path.push('}');
            }
            PathPart::Wildcard { number, .. } => {
                path.push('{');
                path.push_str(&wildcard_name(number));
                path.push('}');
            }
        }
    }
    if let Some(verb) = template.verb() {
        path.push(':');
        path.push_str(verb);
    }
    path
}

/// A regular expression for the values a multi-segment variable takes.
pub(super) fn variable_pattern(segments: &[Segment]) -> String {
    let parts: Vec<String> = segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => regex_escape(text),
            Segment::Single => "[^/]+".to_owned(),
            Segment::Multi => ".*".to_owned(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}

/// The variable's segments as the template writes them: `shelves/*/books/*`.
pub(super) fn variable_shape(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(text) => text.as_str(),
            Segment::Single => "*",
            Segment::Multi => "**",
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Escapes the characters that are special in an ECMA-262 pattern (OpenAPI's regex
/// dialect) outside a class. Only those: with the `u` flag, escaping others is an error.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_patterns() {
        let t = PathTemplate::parse("/v1/{name=shelves/*/books/*}:x").unwrap();
        assert_eq!(render_path(&t), "/v1/{name}:x");
        let v = &t.variables()[0];
        assert_eq!(
            variable_pattern(t.variable_segments(v)),
            "^shelves/[^/]+/books/[^/]+$"
        );
        assert_eq!(variable_shape(t.variable_segments(v)), "shelves/*/books/*");
        let t = PathTemplate::parse("/v1/*/x/{a.b}/**").unwrap();
        assert_eq!(render_path(&t), "/v1/{wildcard-1}/x/{a.b}/{wildcard-2}");
        assert_eq!(regex_escape("a.b-c(d)"), "a\\.b-c\\(d\\)");
    }
}
