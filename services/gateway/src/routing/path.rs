//! Request paths as the matcher sees them: split on `/` first, then each segment
//! percent-decoded, so an encoded `%2F` never creates a new segment.
//!
//! A last segment that contains `:` can be read two ways: as a segment plus a custom
//! verb (`123:cancel` → `123`, verb `cancel`) or as a plain segment whose text holds a
//! colon (`a:b`). [`RequestPath::parse`] produces both readings; the table tries the
//! verb reading first. The split is at the last raw `:`, so a client can put a colon
//! into a value with `%3A` without it ever being taken for a verb.

use std::borrow::Cow;
use std::ops::Range;

use percent_encoding::percent_decode_str;

/// One request path segment, raw and decoded.
#[derive(Debug)]
pub(crate) struct PathSegment<'a> {
    raw: &'a str,
    /// `None` when the percent-decoded bytes are not UTF-8: such a segment matches no
    /// literal and no variable (`**` included), since no string field could hold it.
    decoded: Option<Cow<'a, str>>,
}

impl<'a> PathSegment<'a> {
    fn new(raw: &'a str) -> Self {
        Self {
            raw,
            decoded: percent_decode_str(raw).decode_utf8().ok(),
        }
    }

    /// The fully decoded text, if it is UTF-8.
    pub(crate) fn decoded(&self) -> Option<&str> {
        self.decoded.as_deref()
    }

    /// Decoded except for `%2F`/`%2f`, which stay encoded: the form a multi-segment
    /// variable binds, so that its `/` separators remain unambiguous (`http.proto`).
    fn decoded_keeping_slashes(&self) -> Option<String> {
        let mut out = String::with_capacity(self.raw.len());
        let mut rest = self.raw;
        loop {
            // Byte search: `%2F` is ASCII, so both ends of a hit are char boundaries.
            let next = rest
                .as_bytes()
                .windows(3)
                .position(|w| w.eq_ignore_ascii_case(b"%2f"));
            let piece = &rest[..next.unwrap_or(rest.len())];
            out.push_str(&percent_decode_str(piece).decode_utf8().ok()?);
            match next {
                Some(i) => {
                    out.push_str(&rest[i..i + 3]);
                    rest = &rest[i + 3..];
                }
                None => return Some(out),
            }
        }
    }
}

/// One reading of a request path: its segments and, maybe, a custom verb.
#[derive(Debug)]
pub(crate) struct RequestPath<'a> {
    segments: Vec<PathSegment<'a>>,
    verb: Option<Cow<'a, str>>,
}

impl<'a> RequestPath<'a> {
    /// Splits `path` (the URI path, without query) into its verb reading, if the last
    /// segment holds a `:`, and its plain reading. `None` if `path` is not absolute.
    pub(crate) fn parse(path: &'a str) -> Option<(Option<Self>, Self)> {
        let rest = path.strip_prefix('/')?;
        let raw: Vec<&str> = rest.split('/').collect();
        let plain = Self {
            segments: raw.iter().map(|s| PathSegment::new(s)).collect(),
            verb: None,
        };
        let with_verb = raw.split_last().and_then(|(last, init)| {
            let (head, verb) = last.rsplit_once(':')?;
            let verb = percent_decode_str(verb).decode_utf8().ok()?;
            if verb.is_empty() {
                return None;
            }
            let mut segments: Vec<PathSegment<'a>> =
                init.iter().map(|s| PathSegment::new(s)).collect();
            segments.push(PathSegment::new(head));
            Some(Self {
                segments,
                verb: Some(verb),
            })
        });
        Some((with_verb, plain))
    }

    pub(crate) fn segments(&self) -> &[PathSegment<'a>] {
        &self.segments
    }

    pub(crate) fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The fully decoded text of one segment.
    pub(crate) fn decoded(&self, index: usize) -> Option<&str> {
        self.segments.get(index)?.decoded()
    }

    /// The segments in `range` joined with `/`, each decoded except for `%2F`.
    pub(crate) fn joined_keeping_slashes(&self, range: Range<usize>) -> Option<String> {
        let parts: Option<Vec<String>> = self
            .segments
            .get(range)?
            .iter()
            .map(PathSegment::decoded_keeping_slashes)
            .collect();
        Some(parts?.join("/"))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn splits_before_decoding() {
        let (verb, plain) = RequestPath::parse("/v1/a%2Fb/c%20d").unwrap();
        assert!(verb.is_none());
        assert_eq!(plain.segments().len(), 3);
        assert_eq!(plain.decoded(1), Some("a/b"));
        assert_eq!(plain.decoded(2), Some("c d"));
        assert_eq!(plain.joined_keeping_slashes(0..3).unwrap(), "v1/a%2Fb/c d");
    }

    #[test]
    fn verb_reading() {
        let (verb, plain) = RequestPath::parse("/v1/orders/123:cancel").unwrap();
        let verb = verb.unwrap();
        assert_eq!(verb.verb(), Some("cancel"));
        assert_eq!(verb.decoded(2), Some("123"));
        assert_eq!(plain.decoded(2), Some("123:cancel"));
        // An encoded colon is data, never a verb separator.
        let (verb, plain) = RequestPath::parse("/v1/a%3Ab").unwrap();
        assert!(verb.is_none());
        assert_eq!(plain.decoded(1), Some("a:b"));
        // An empty verb is no verb.
        assert!(RequestPath::parse("/v1/a:").unwrap().0.is_none());
    }

    #[test]
    fn invalid_utf8_and_relative_paths() {
        let (_, plain) = RequestPath::parse("/v1/%FF").unwrap();
        assert_eq!(plain.decoded(1), None);
        assert!(RequestPath::parse("v1/x").is_none());
    }
}
