//! A strict reader of the Prometheus text exposition format (version 0.0.4), so a
//! test can check that a whole `/metrics` page is well formed before looking into it.
//!
//! Strict means: every sample belongs to a family declared by `# TYPE` before it, a
//! family's lines are contiguous, names and label names are valid, label values use
//! only the three escapes the format knows, no label repeats, values are numbers
//! (`+Inf`, `-Inf`, `NaN` included), counters are not negative, and histograms are
//! complete (`le` on every bucket, cumulative counts, a `+Inf` bucket equal to
//! `_count`, and a `_sum`).

use std::collections::{BTreeMap, HashMap, HashSet};

/// Series every component's page has, whatever traffic it has seen: its process's
/// own figures and the span exporter's drop counter.
pub const EVERY_COMPONENT: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_start_time_seconds",
    "otel_exporter_spans_dropped_total",
];

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name (`…_bucket`, `…_sum`, `…_count` for histograms).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// Whether every `(name, value)` pair of `labels` is among the sample's labels.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// A parsed page.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every sample, in page order.
    pub samples: Vec<Sample>,
    /// The declared type of each family.
    pub types: HashMap<String, String>,
    /// The help text of each family that has one.
    pub help: HashMap<String, String>,
}

impl Exposition {
    /// The samples named `name` that carry `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && s.has_labels(labels))
            .collect()
    }

    /// The value of the one sample named `name` with `labels`, if exactly one matches.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels).as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("`{text}` is not a number")),
    }
}

/// Parses `name{labels} value [timestamp]`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name `{name}`"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let close = loop {
            // A label name, `=`, a quoted value, then `,` or `}`.
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".to_owned());
            };
            if c == '}' {
                break start;
            }
            let eq = after_brace[start..]
                .find('=')
                .ok_or("a label without `=`")?
                + start;
            let label = &after_brace[start..eq];
            if !valid_label_name(label) {
                return Err(format!("invalid label name `{label}`"));
            }
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label `{label}` has an unquoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("invalid escape {other:?} in `{label}`")),
                    },
                    Some((_, '\n')) | None => {
                        return Err(format!("unterminated value of `{label}`"));
                    }
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label `{label}` repeated"));
            }
            match chars.peek().map(|&(_, c)| c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                other => return Err(format!("unexpected {other:?} after a label value")),
            }
        };
        rest = &after_brace[close + 1..];
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().ok_or("no value")?)?;
    if let Some(timestamp) = parts.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("invalid timestamp `{timestamp}`"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(kind) = types.get(base)
            && (kind == "histogram" || (kind == "summary" && suffix != "_bucket"))
        {
            return Some(base);
        }
    }
    None
}

/// Parses a whole page, or says what is wrong with it (with the line number).
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut page = Exposition::default();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: `{line}`", number + 1);
        if line.trim().is_empty() {
            continue;
        }
        let family = if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_metric_name(name) {
                        return Err(at(format!("invalid metric name `{name}`")));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at(format!("unknown type `{kind}`")));
                    }
                    // A sample before its TYPE already failed as untyped.
                    if page
                        .types
                        .insert(name.to_owned(), kind.to_owned())
                        .is_some()
                    {
                        return Err(at("TYPE repeated".to_owned()));
                    }
                    name.to_owned()
                }
                (Some("HELP"), Some(name), help) => {
                    if !valid_metric_name(name) {
                        return Err(at(format!("invalid metric name `{name}`")));
                    }
                    if page
                        .help
                        .insert(name.to_owned(), help.unwrap_or_default().to_owned())
                        .is_some()
                    {
                        return Err(at("HELP repeated".to_owned()));
                    }
                    name.to_owned()
                }
                // Any other comment is allowed and belongs to no family.
                _ => continue,
            }
        } else {
            let sample = parse_sample(line).map_err(at)?;
            let family = family_of(&sample.name, &page.types)
                .ok_or_else(|| at("a sample without a TYPE before it".to_owned()))?
                .to_owned();
            if page.types.get(&family).map(String::as_str) == Some("counter") && sample.value < 0.0
            {
                return Err(at("a negative counter".to_owned()));
            }
            page.samples.push(sample);
            family
        };
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(at(format!("lines of `{family}` are not contiguous")));
            }
            if let Some(previous) = current.replace(family) {
                finished.insert(previous);
            }
        }
    }
    check_histograms(&page)?;
    Ok(page)
}

/// Every histogram series: `le` buckets, cumulative, `+Inf` equal to `_count`, a `_sum`.
fn check_histograms(page: &Exposition) -> Result<(), String> {
    for (family, kind) in &page.types {
        if kind != "histogram" {
            continue;
        }
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in page
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut labels = sample.labels.clone();
            let le = labels
                .remove("le")
                .ok_or_else(|| format!("{family}: a bucket without `le`"))?;
            series
                .entry(labels)
                .or_default()
                .push((parse_value(&le)?, sample.value));
        }
        for (labels, buckets) in series {
            let mut previous = (f64::NEG_INFINITY, 0.0);
            for &(le, count) in &buckets {
                if le <= previous.0 || count < previous.1 {
                    return Err(format!("{family}{labels:?}: buckets not cumulative"));
                }
                previous = (le, count);
            }
            let with = |name: String| {
                page.samples
                    .iter()
                    .find(|s| s.name == name && s.labels == labels)
                    .map(|s| s.value)
            };
            let count = with(format!("{family}_count"))
                .ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
            with(format!("{family}_sum")).ok_or_else(|| format!("{family}{labels:?}: no _sum"))?;
            if previous.0 != f64::INFINITY || previous.1 != count {
                return Err(format!(
                    "{family}{labels:?}: the +Inf bucket is not the _count"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_well_formed_page() {
        let page = parse(
            "# HELP requests_total Calls.\n# TYPE requests_total counter\n\
             requests_total{method=\"Get\",code=\"0\"} 3\n\n\
             # TYPE latency histogram\n\
             latency_bucket{le=\"0.1\"} 1\nlatency_bucket{le=\"+Inf\"} 2\n\
             latency_sum 0.3\nlatency_count 2\n\
             # TYPE up gauge\nup{path=\"a\\\\b \\\"q\\\"\\n\"} 1 1700000000000\n",
        )
        .unwrap();
        assert_eq!(
            page.value("requests_total", &[("method", "Get")]),
            Some(3.0)
        );
        assert_eq!(page.find("up", &[]).len(), 1);
        assert_eq!(page.find("up", &[])[0].labels["path"], "a\\b \"q\"\n");
        assert_eq!(page.help["requests_total"], "Calls.");
    }

    #[test]
    fn refuses_what_a_scraper_would_refuse() {
        for bad in [
            "untyped_sample 1\n",
            "# TYPE a counter\na{x=\"1\",x=\"2\"} 1\n",
            "# TYPE a counter\na{x=1} 1\n",
            "# TYPE a counter\na{x=\"\\t\"} 1\n",
            "# TYPE a counter\na -1\n",
            "# TYPE a gauge\na one\n",
            "# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\nb 2\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 2\n",
            "# TYPE 1a gauge\n",
        ] {
            assert!(parse(bad).is_err(), "accepted: {bad:?}");
        }
    }
}
