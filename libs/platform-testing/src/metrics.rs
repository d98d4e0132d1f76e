//! Reading a Prometheus text page the way a test checks it: the samples of one metric
//! whose labels include the pairs the test names.

/// The values of the samples of `metric` whose labels include every `(name, value)`
/// of `labels`, in page order.
fn samples<'a>(
    page: &'a str,
    metric: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = f64> + 'a {
    page.lines()
        .filter(move |line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter(move |line| {
            labels
                .iter()
                .all(|(name, value)| line.contains(&format!("{name}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// The first sample of `metric` with `labels` (see [`sum`]); `None` when there is none.
pub fn sample(page: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(page, metric, labels).next()
}

/// The sum of the samples of `metric` whose labels include every `(name, value)` of
/// `labels`; 0 when there are none.
pub fn sum(page: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(page, metric, labels).sum()
}
