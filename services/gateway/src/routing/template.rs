//! Path templates of `google.api.http` rules: the parser, and the compiled form that
//! the route table matches request paths against.
//!
//! The grammar is the one in `google/api/http.proto`:
//!
//! ```text
//! Template  = "/" Segments [ Verb ] ;
//! Segments  = Segment { "/" Segment } ;
//! Segment   = "*" | "**" | LITERAL | Variable ;
//! Variable  = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb      = ":" LITERAL ;
//! ```
//!
//! A template is compiled into a flat list of [`Segment`]s (a variable's own segments
//! are spliced in place) plus the [`Variable`]s, each covering a range of that list.
//! `{id}` is `{id=*}`. `**` may only be the last segment, and a variable may not
//! contain another variable (both as `http.proto` requires).
//!
//! A LITERAL is a non-empty run of characters other than `/ { } * : = ? #`, ASCII
//! whitespace and control characters; it is compared with the percent-decoded request
//! segment, so `/v1/us%65rs` reaches a `/v1/users` route.

use std::fmt;
use std::ops::Range;

/// One segment of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches exactly this text (after percent-decoding the request segment).
    Literal(String),
    /// `*`: matches one non-empty segment.
    Single,
    /// `**`: matches the rest of the path, zero or more segments. Always last.
    Multi,
}

/// A `{field.path=...}` variable: which request field it fills and which segments of
/// the template it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    field_path: String,
    segments: Range<usize>,
}

impl Variable {
    /// The dotted field path, in proto field names (`book.name`).
    pub fn field_path(&self) -> &str {
        &self.field_path
    }

    /// The indexes of the template's [`Segment`]s that this variable captures.
    pub fn segments(&self) -> Range<usize> {
        self.segments.clone()
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

impl PathTemplate {
    /// Parses `text` as a path template.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        Parser::new(text).parse()
    }

    /// The template as written in the proto.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The flattened segments, variables' own segments spliced in.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The variables, in the order they appear.
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// The custom verb (`cancel` for `/v1/orders/{id}:cancel`), if any.
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The segments a variable captures.
    pub fn variable_segments(&self, variable: &Variable) -> &[Segment] {
        self.segments.get(variable.segments()).unwrap_or(&[])
    }

    /// Whether `variable` captures exactly one `*` segment: such a value is fully
    /// percent-decoded, while a multi-segment value keeps `%2F` encoded so its `/`s
    /// stay unambiguous (`http.proto`, "reserved expansion").
    pub fn is_single_segment(&self, variable: &Variable) -> bool {
        matches!(self.variable_segments(variable), [Segment::Single])
    }

    /// The key two templates share exactly when they match the same set of paths:
    /// segments and verb, with variable names dropped (`/v1/{a}` and `/v1/{b}` and
    /// `/v1/*` have the same shape).
    pub(crate) fn shape(&self) -> (&[Segment], Option<&str>) {
        (&self.segments, self.verb())
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for PathTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Why a path template does not parse. Every variant carries the template text, so
/// that a build-time error points at the annotation to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not begin with `/`.
    #[error("path template {template:?} must start with '/'")]
    MissingLeadingSlash {
        /// The template text.
        template: String,
    },
    /// Two `/` in a row, a trailing `/`, or `/` alone.
    #[error("path template {template:?} has an empty segment at byte {offset}")]
    EmptySegment {
        /// The template text.
        template: String,
        /// Byte offset of the empty segment.
        offset: usize,
    },
    /// A character that the grammar does not allow where it appears.
    #[error("path template {template:?} has an unexpected {found:?} at byte {offset}")]
    UnexpectedChar {
        /// The template text.
        template: String,
        /// Byte offset of the character.
        offset: usize,
        /// The character.
        found: char,
    },
    /// The text ends inside a construct, e.g. an unclosed `{`.
    #[error("path template {template:?} ends early: expected {expected}")]
    UnexpectedEnd {
        /// The template text.
        template: String,
        /// What the parser was looking for.
        expected: &'static str,
    },
    /// A variable name that is not `IDENT { "." IDENT }`.
    #[error("path template {template:?} has an invalid field path at byte {offset}")]
    InvalidFieldPath {
        /// The template text.
        template: String,
        /// Byte offset where the field path goes wrong.
        offset: usize,
    },
    /// A variable inside a variable.
    #[error("path template {template:?} nests a variable inside another at byte {offset}")]
    NestedVariable {
        /// The template text.
        template: String,
        /// Byte offset of the inner `{`.
        offset: usize,
    },
    /// `**` somewhere other than the last segment.
    #[error("path template {template:?} uses '**' before the last segment")]
    MultiNotLast {
        /// The template text.
        template: String,
    },
    /// The same field bound by two variables.
    #[error("path template {template:?} binds field {field:?} more than once")]
    DuplicateVariable {
        /// The template text.
        template: String,
        /// The field path bound twice.
        field: String,
    },
    /// `:` with nothing after it.
    #[error("path template {template:?} has an empty verb after ':'")]
    EmptyVerb {
        /// The template text.
        template: String,
    },
}

impl TemplateError {
    /// The template that failed to parse.
    pub fn template(&self) -> &str {
        match self {
            Self::MissingLeadingSlash { template }
            | Self::EmptySegment { template, .. }
            | Self::UnexpectedChar { template, .. }
            | Self::UnexpectedEnd { template, .. }
            | Self::InvalidFieldPath { template, .. }
            | Self::NestedVariable { template, .. }
            | Self::MultiNotLast { template }
            | Self::DuplicateVariable { template, .. }
            | Self::EmptyVerb { template } => template,
        }
    }
}

/// Characters that end a LITERAL: the grammar's punctuation, plus `?` and `#` which
/// can never be part of a request path.
fn is_literal_char(c: char) -> bool {
    !matches!(c, '/' | '{' | '}' | '*' | ':' | '=' | '?' | '#')
        && !c.is_ascii_whitespace()
        && !c.is_control()
}

/// A recursive-descent parser over the template's characters.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    in_variable: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            segments: Vec::new(),
            variables: Vec::new(),
            in_variable: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn template(&self) -> String {
        self.text.to_owned()
    }

    fn unexpected(&self) -> TemplateError {
        match self.peek() {
            Some(found) => TemplateError::UnexpectedChar {
                template: self.template(),
                offset: self.pos,
                found,
            },
            None => TemplateError::UnexpectedEnd {
                template: self.template(),
                expected: "a segment",
            },
        }
    }

    fn parse(mut self) -> Result<PathTemplate, TemplateError> {
        if self.peek() != Some('/') {
            return Err(TemplateError::MissingLeadingSlash {
                template: self.template(),
            });
        }
        self.bump();
        self.parse_segments()?;

        let verb = if self.peek() == Some(':') {
            self.bump();
            let literal = self.parse_literal();
            if literal.is_empty() {
                return match self.peek() {
                    None => Err(TemplateError::EmptyVerb {
                        template: self.template(),
                    }),
                    Some(_) => Err(self.unexpected()),
                };
            }
            Some(literal)
        } else {
            None
        };
        if self.peek().is_some() {
            return Err(self.unexpected());
        }

        if let Some(index) = self.segments.iter().position(|s| *s == Segment::Multi)
            && index + 1 != self.segments.len()
        {
            return Err(TemplateError::MultiNotLast {
                template: self.template(),
            });
        }
        for (i, variable) in self.variables.iter().enumerate() {
            if self.variables[..i]
                .iter()
                .any(|other| other.field_path == variable.field_path)
            {
                return Err(TemplateError::DuplicateVariable {
                    template: self.template(),
                    field: variable.field_path.clone(),
                });
            }
        }

        Ok(PathTemplate {
            text: self.text.to_owned(),
            segments: self.segments,
            variables: self.variables,
            verb,
        })
    }

    /// `Segments = Segment { "/" Segment }`.
    fn parse_segments(&mut self) -> Result<(), TemplateError> {
        loop {
            self.parse_segment()?;
            if self.peek() == Some('/') {
                self.bump();
            } else {
                return Ok(());
            }
        }
    }

    /// `Segment = "*" | "**" | LITERAL | Variable`.
    fn parse_segment(&mut self) -> Result<(), TemplateError> {
        match self.peek() {
            Some('*') => {
                self.bump();
                if self.peek() == Some('*') {
                    self.bump();
                    self.segments.push(Segment::Multi);
                } else {
                    self.segments.push(Segment::Single);
                }
                // `*` is a whole segment: `*a` or `***` is not a wildcard.
                match self.peek() {
                    None | Some('/' | '}' | ':') => Ok(()),
                    Some(_) => Err(self.unexpected()),
                }
            }
            Some('{') => self.parse_variable(),
            Some('/') => Err(TemplateError::EmptySegment {
                template: self.template(),
                offset: self.pos,
            }),
            None => Err(TemplateError::EmptySegment {
                template: self.template(),
                offset: self.pos,
            }),
            Some(_) => {
                let literal = self.parse_literal();
                if literal.is_empty() {
                    return Err(self.unexpected());
                }
                self.segments.push(Segment::Literal(literal));
                Ok(())
            }
        }
    }

    fn parse_literal(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_literal_char) {
            self.bump();
        }
        self.text[start..self.pos].to_owned()
    }

    /// `Variable = "{" FieldPath [ "=" Segments ] "}"`.
    fn parse_variable(&mut self) -> Result<(), TemplateError> {
        if self.in_variable {
            return Err(TemplateError::NestedVariable {
                template: self.template(),
                offset: self.pos,
            });
        }
        self.bump();
        let field_path = self.parse_field_path()?;
        let first = self.segments.len();
        match self.peek() {
            Some('=') => {
                self.bump();
                self.in_variable = true;
                let parsed = self.parse_segments();
                self.in_variable = false;
                parsed?;
            }
            Some('}') => self.segments.push(Segment::Single),
            Some(_) => return Err(self.unexpected()),
            None => {
                return Err(TemplateError::UnexpectedEnd {
                    template: self.template(),
                    expected: "'}'",
                });
            }
        }
        match self.peek() {
            Some('}') => self.bump(),
            Some(_) => return Err(self.unexpected()),
            None => {
                return Err(TemplateError::UnexpectedEnd {
                    template: self.template(),
                    expected: "'}'",
                });
            }
        }
        self.variables.push(Variable {
            field_path,
            segments: first..self.segments.len(),
        });
        Ok(())
    }

    /// `FieldPath = IDENT { "." IDENT }`, `IDENT = [A-Za-z_][A-Za-z0-9_]*`.
    fn parse_field_path(&mut self) -> Result<String, TemplateError> {
        let start = self.pos;
        loop {
            let ident_start = self.pos;
            match self.peek() {
                Some(c) if c.is_ascii_alphabetic() || c == '_' => self.bump(),
                _ => {
                    return Err(TemplateError::InvalidFieldPath {
                        template: self.template(),
                        offset: ident_start,
                    });
                }
            }
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.bump();
            }
            if self.peek() == Some('.') {
                self.bump();
            } else {
                return Ok(self.text[start..self.pos].to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }

    fn vars(t: &PathTemplate) -> Vec<(&str, Range<usize>)> {
        t.variables()
            .iter()
            .map(|v| (v.field_path(), v.segments()))
            .collect()
    }

    #[test]
    fn literals_only() {
        let t = PathTemplate::parse("/v1/users").unwrap();
        assert_eq!(t.segments(), &[lit("v1"), lit("users")]);
        assert!(t.variables().is_empty());
        assert_eq!(t.verb(), None);
        assert_eq!(t.as_str(), "/v1/users");
        assert_eq!(t.to_string(), "/v1/users");
    }

    #[test]
    fn bare_variable_is_single_wildcard() {
        let t = PathTemplate::parse("/v1/users/{id}").unwrap();
        assert_eq!(t.segments(), &[lit("v1"), lit("users"), Segment::Single]);
        assert_eq!(vars(&t), vec![("id", 2..3)]);
        assert!(t.is_single_segment(&t.variables()[0]));
        let explicit = PathTemplate::parse("/v1/users/{id=*}").unwrap();
        assert_eq!(t.segments(), explicit.segments());
        assert_eq!(t.variables(), explicit.variables());
    }

    #[test]
    fn dotted_field_path() {
        let t = PathTemplate::parse("/v1/{book.name}/x/{a_1.b_2.c}").unwrap();
        assert_eq!(vars(&t), vec![("book.name", 1..2), ("a_1.b_2.c", 3..4)]);
    }

    #[test]
    fn variable_with_segments() {
        let t = PathTemplate::parse("/v1/{name=shelves/*/books/*}").unwrap();
        assert_eq!(
            t.segments(),
            &[
                lit("v1"),
                lit("shelves"),
                Segment::Single,
                lit("books"),
                Segment::Single
            ]
        );
        assert_eq!(vars(&t), vec![("name", 1..5)]);
        assert!(!t.is_single_segment(&t.variables()[0]));
    }

    #[test]
    fn wildcards_without_variables() {
        let t = PathTemplate::parse("/v1/*/x/**").unwrap();
        assert_eq!(
            t.segments(),
            &[lit("v1"), Segment::Single, lit("x"), Segment::Multi]
        );
        assert!(t.variables().is_empty());
    }

    #[test]
    fn multi_variable() {
        let t = PathTemplate::parse("/v1/files/{path=**}").unwrap();
        assert_eq!(t.segments(), &[lit("v1"), lit("files"), Segment::Multi]);
        assert_eq!(vars(&t), vec![("path", 2..3)]);
        let t = PathTemplate::parse("/v1/{name=shelves/**}").unwrap();
        assert_eq!(vars(&t), vec![("name", 1..3)]);
    }

    #[test]
    fn verb() {
        let t = PathTemplate::parse("/v1/orders/{id}:cancel").unwrap();
        assert_eq!(t.verb(), Some("cancel"));
        assert_eq!(t.segments(), &[lit("v1"), lit("orders"), Segment::Single]);
        let t = PathTemplate::parse("/v1/books:search").unwrap();
        assert_eq!(t.verb(), Some("search"));
        assert_eq!(t.segments(), &[lit("v1"), lit("books")]);
        let t = PathTemplate::parse("/v1/{name=**}:undelete").unwrap();
        assert_eq!(t.verb(), Some("undelete"));
        assert_eq!(t.segments(), &[lit("v1"), Segment::Multi]);
    }

    #[test]
    fn shape_ignores_variable_names() {
        let a = PathTemplate::parse("/v1/{a}").unwrap();
        let b = PathTemplate::parse("/v1/{b=*}").unwrap();
        let c = PathTemplate::parse("/v1/*").unwrap();
        let d = PathTemplate::parse("/v1/{a}:x").unwrap();
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.shape(), c.shape());
        assert_ne!(a.shape(), d.shape());
    }

    fn err(text: &str) -> TemplateError {
        let e = PathTemplate::parse(text).unwrap_err();
        assert_eq!(e.template(), text, "error carries the template text");
        assert!(
            e.to_string().contains(text),
            "message names the template: {e}"
        );
        e
    }

    /// Asserts that each template is refused with an error that matches its pattern.
    macro_rules! assert_refused {
        ($($template:literal => $error:pat),+ $(,)?) => {
            $(assert!(matches!(err($template), $error), "{}: {:?}", $template, err($template));)+
        };
    }

    #[test]
    fn errors() {
        assert_refused! {
            "v1/users" => TemplateError::MissingLeadingSlash { .. },
            "" => TemplateError::MissingLeadingSlash { .. },
            "/" => TemplateError::EmptySegment { offset: 1, .. },
            "/v1//users" => TemplateError::EmptySegment { offset: 4, .. },
            "/v1/users/" => TemplateError::EmptySegment { .. },
            "/v1/{id" => TemplateError::UnexpectedEnd { .. },
            "/v1/{id=*" => TemplateError::UnexpectedEnd { .. },
            "/v1/{}" => TemplateError::InvalidFieldPath { offset: 5, .. },
            "/v1/{1d}" => TemplateError::InvalidFieldPath { .. },
            "/v1/{a.}" => TemplateError::InvalidFieldPath { .. },
            "/v1/{a-b}" => TemplateError::UnexpectedChar { found: '-', .. },
            "/v1/{a={b}}" => TemplateError::NestedVariable { .. },
            "/v1/**/x" => TemplateError::MultiNotLast { .. },
            "/v1/{a=**}/x" => TemplateError::MultiNotLast { .. },
            "/v1/{a}/{a}" => TemplateError::DuplicateVariable { .. },
            "/v1/x:" => TemplateError::EmptyVerb { .. },
            "/v1/x:a:b" => TemplateError::UnexpectedChar { found: ':', .. },
            "/v1/x:a/b" => TemplateError::UnexpectedChar { found: '/', .. },
            "/v1/*a" => TemplateError::UnexpectedChar { found: 'a', .. },
            "/v1/***" => TemplateError::UnexpectedChar { found: '*', .. },
            "/v1/a}" => TemplateError::UnexpectedChar { found: '}', .. },
            "/v1/a b" => TemplateError::UnexpectedChar { found: ' ', .. },
            "/v1/a?x=1" => TemplateError::UnexpectedChar { found: '?', .. },
            "/v1/{a=x:y}" => TemplateError::UnexpectedChar { found: ':', .. },
        }
    }
}
