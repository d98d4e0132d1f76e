//! Proto comments as the document's descriptions: looked up by an element's
//! source-code-info path, cleaned of protoc's indentation, and cut to a summary for
//! operations.

use std::collections::HashMap;

use prost_reflect::{FieldDescriptor, FileDescriptor};

/// The comments of every file asked about so far, indexed once per file: a document
/// asks for hundreds of elements' comments, and a file's locations are a flat list.
#[derive(Debug, Default)]
pub(super) struct Comments {
    /// By file name, then by source-code-info path.
    by_file: HashMap<String, HashMap<Vec<i32>, String>>,
}

impl Comments {
    /// The cleaned leading (else trailing) comment of the element at `path` of `file`.
    pub(super) fn of(&mut self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        self.by_file
            .entry(file.name().to_owned())
            .or_insert_with(|| index_comments(file))
            .get(path)
            .cloned()
    }

    /// The comment of a field.
    pub(super) fn of_field(&mut self, field: &FieldDescriptor) -> Option<String> {
        self.of(&field.parent_file(), field.path())
    }
}

/// Every commented element of `file`, by its source-code-info path.
fn index_comments(file: &FileDescriptor) -> HashMap<Vec<i32>, String> {
    let mut comments = HashMap::new();
    let Some(info) = &file.file_descriptor_proto().source_code_info else {
        return comments;
    };
    for location in &info.location {
        let text = [&location.leading_comments, &location.trailing_comments]
            .into_iter()
            .filter_map(|c| c.as_deref())
            .find_map(clean_comment);
        if let Some(text) = text {
            // The first location of a path is the element itself.
            comments.entry(location.path.clone()).or_insert(text);
        }
    }
    comments
}

/// A comment as protoc records it (`// Foo` → ` Foo\n`), without the common
/// indentation and the blank lines around it; `None` when nothing is left.
fn clean_comment(raw: &str) -> Option<String> {
    let lines: Vec<&str> = raw.lines().map(str::trim_end).collect();
    // Spaces and tabs only: one byte each, so the cut below is on a char boundary.
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
    let common = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    let text = lines
        .iter()
        .map(|l| l.get(common..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim_matches('\n');
    (!text.is_empty()).then(|| text.to_owned())
}

/// The first sentence of a comment's first paragraph, on one line.
pub(super) fn summary(text: &str) -> String {
    let paragraph = text.split("\n\n").next().unwrap_or(text);
    let line = paragraph
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    match line.find(". ") {
        Some(end) => line[..=end].to_owned(),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_are_unindented_and_trimmed() {
        assert_eq!(
            clean_comment(" Lists orders.\n\n   Indented.\n").as_deref(),
            Some("Lists orders.\n\n  Indented.")
        );
        assert_eq!(clean_comment("\n  \n"), None);
    }

    #[test]
    fn summary_is_first_sentence() {
        assert_eq!(
            summary("Places an order. Safe to\nretry.\n\nMore."),
            "Places an order."
        );
        assert_eq!(
            summary("Exchanges a\nkey for a token"),
            "Exchanges a key for a token"
        );
    }
}
