//! The well-known string formats, as protovalidate defines them.

/// A valid email address as the HTML standard defines it (what `<input
/// type=email>` accepts, and what protovalidate's `string.email` checks): a local part
/// of letters, digits and ``.!#$%&'*+/=?^_`{|}~-``, `@`, and a domain of dot-separated
/// labels of 1 to 63 letters, digits and hyphens, neither starting nor ending with a
/// hyphen. ASCII only.
pub(super) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    local_ok && domain.split('.').all(is_label)
}

/// A domain label: 1 to 63 letters, digits and hyphens, not starting or ending with a
/// hyphen.
fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A UUID in its hyphenated form, any version, either case:
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub(super) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_as_html_forms_take_them() {
        for ok in [
            "ada@example.com",
            "a.b+c@x.io",
            "o'brien@example.org",
            "a@b",
            "x@a-b.c",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a da@example.com",
            "ada@-x.com",
            "ada@x-.com",
            "ada@example..com",
            "a@b@c.com",
            "ren\u{e9}@example.com",
            " ada@example.com",
        ] {
            assert!(!is_email(bad), "{bad:?}");
        }
        assert!(!is_email(&format!("a@{}.com", "x".repeat(64))));
    }

    #[test]
    fn uuids_hyphenated_only() {
        assert!(is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
        assert!(is_uuid("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"));
        assert!(!is_uuid("0190a1b2c3d47e5f8a9b0c1d2e3f4a5b"));
        assert!(!is_uuid("{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}"));
        assert!(!is_uuid("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g"));
        assert!(!is_uuid(""));
    }
}
