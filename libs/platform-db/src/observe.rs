//! What a database client shows an operator: a span per query and the pool's gauges.
//!
//! Every query a store runs goes through [`query_span`] and [`TraceQuery::traced`]:
//! a client span named like `SELECT users`, with the OpenTelemetry database attributes
//! (`db.system`, `db.operation`, `db.collection.name`, `db.query.text`), under the
//! span of the call that caused it, marked as an error when the query fails. The text
//! is the statement with its placeholders (`$1`, `?1`); bound values never reach a span.
//!
//! [`Database::record_pool_metrics`] sets the pool gauges; the service calls it before
//! every scrape. sqlx keeps no record of how long acquiring a connection waited (it only
//! logs slow acquisitions, at WARN past two seconds), so there is no wait histogram:
//! `db_client_connections_usage{state="used"}` reaching `db_client_connections_max`
//! is the sign of a pool too small.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;
use tracing::field::Empty;

use crate::Database;

/// `db.system` of PostgreSQL.
pub const POSTGRESQL: &str = "postgresql";
/// `db.system` of SQLite.
pub const SQLITE: &str = "sqlite";

/// Metric names, in the Prometheus form of the OpenTelemetry database conventions.
pub mod names {
    /// Gauge of the pool's upper bound of connections.
    pub const CONNECTIONS_MAX: &str = "db_client_connections_max";
    /// Gauge of open connections by `state`: `idle` or `used`.
    pub const CONNECTIONS_USAGE: &str = "db_client_connections_usage";
}

/// A client span for one query: `operation` is the SQL verb (`SELECT`, `INSERT`, ...,
/// or `BEGIN`/`COMMIT`/`ROLLBACK` with an empty `table`), `sql` the statement with its
/// placeholders. Open it just before the query runs, under the caller's span.
pub fn query_span(system: &'static str, operation: &'static str, table: &str, sql: &str) -> Span {
    let name = if table.is_empty() {
        operation.to_owned()
    } else {
        format!("{operation} {table}")
    };
    tracing::info_span!(
        "db.query",
        otel.name = %name,
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        db.system = system,
        db.operation = operation,
        db.collection.name = table,
        db.query.text = sql,
        db.response.status_code = Empty,
        error.type = Empty,
    )
}

/// Ties a query future to its [`query_span`].
pub trait TraceQuery: Future + Sized {
    /// The query, timed by `span`, which records whether it failed.
    fn traced(self, span: Span) -> Traced<Self> {
        Traced { inner: self, span }
    }
}

impl<F: Future> TraceQuery for F {}

pin_project_lite::pin_project! {
    /// A query future with its span; see [`TraceQuery::traced`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless awaited"]
    pub struct Traced<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F, T> Future for Traced<F>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The span is not entered around the poll: sqlx's query streams re-enter the
        // span that was current when the query was built (the caller's), so entering
        // this one reached nothing inside sqlx and cost an entry and an exit on every
        // poll. The span is still the query's: a child of the caller's, open as long as
        // the query runs, and marked when it fails.
        let polled = this.inner.poll(cx);
        if let Poll::Ready(Err(error)) = &polled {
            record_error(this.span, error);
        }
        polled
    }
}

/// Marks `span` failed with what went wrong. The message of a database error names
/// the constraint or the syntax problem, never the values of the row.
fn record_error(span: &Span, error: &sqlx::Error) {
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", tracing::field::display(error));
    let kind = match error {
        sqlx::Error::Database(db) => {
            if let Some(code) = db.code() {
                span.record("db.response.status_code", code.as_ref());
            }
            "database"
        }
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "other",
    };
    span.record("error.type", kind);
}

impl Database {
    /// Sets the pool gauges of this database, labelled with `pool_name` (the service)
    /// and `db_system`.
    pub fn record_pool_metrics(&self, pool_name: &str) {
        // Described here, on first use, because only then is the recorder installed.
        static DESCRIBED: std::sync::Once = std::sync::Once::new();
        DESCRIBED.call_once(|| {
            metrics::describe_gauge!(
                names::CONNECTIONS_MAX,
                "Upper bound of the database connection pool."
            );
            metrics::describe_gauge!(
                names::CONNECTIONS_USAGE,
                "Open database connections, by state (idle or used)."
            );
        });
        let (max, open, idle) = match self {
            Self::Postgres(pool) => (
                pool.options().get_max_connections(),
                pool.size(),
                pool.num_idle(),
            ),
            Self::Sqlite(pool) => (
                pool.options().get_max_connections(),
                pool.size(),
                pool.num_idle(),
            ),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        let system = self.system();
        metrics::gauge!(
            names::CONNECTIONS_MAX,
            "db_system" => system,
            "pool_name" => pool_name.to_owned()
        )
        .set(f64::from(max));
        for (state, count) in [("idle", idle), ("used", open.saturating_sub(idle))] {
            metrics::gauge!(
                names::CONNECTIONS_USAGE,
                "db_system" => system,
                "pool_name" => pool_name.to_owned(),
                "state" => state
            )
            .set(f64::from(count));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tracing::Instrument;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context as LayerContext, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    use super::*;
    use crate::DatabaseSettings;

    /// A span's parent's name and its fields as text.
    type Seen = (Option<String>, HashMap<String, String>);

    /// Every span seen, by span id.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<HashMap<u64, Seen>>>);

    struct Fields<'a>(&'a mut HashMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Spans {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            let parent = ctx
                .span(id)
                .and_then(|span| span.parent())
                .map(|parent| parent.name().to_owned());
            self.0
                .lock()
                .unwrap()
                .insert(id.into_u64(), (parent, fields));
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: LayerContext<'_, S>) {
            if let Some((_, fields)) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
                values.record(&mut Fields(fields));
            }
        }
    }

    impl Spans {
        fn named(&self, name: &str) -> Vec<Seen> {
            self.0
                .lock()
                .unwrap()
                .values()
                .filter(|(_, fields)| fields.get("otel.name").map(String::as_str) == Some(name))
                .cloned()
                .collect()
        }
    }

    #[tokio::test]
    async fn queries_get_client_spans_under_the_caller_and_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("spans.db").display());
        let db = Database::connect_lazy(&DatabaseSettings::new(url)).unwrap();
        let Database::Sqlite(pool) = &db else {
            panic!("a SQLite URL gives a SQLite pool")
        };
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry().with(spans.clone());
        let _default = tracing::subscriber::set_default(subscriber);

        let call = tracing::info_span!("call");
        let sql = "SELECT ?1";
        async {
            sqlx::query(sql)
                .bind("secret value")
                .execute(pool)
                .traced(query_span(SQLITE, "SELECT", "numbers", sql))
                .await
                .unwrap();
            let bad = "SELECT nope FROM missing WHERE id = ?1";
            sqlx::query(bad)
                .bind(7)
                .execute(pool)
                .traced(query_span(SQLITE, "SELECT", "missing", bad))
                .await
                .unwrap_err();
        }
        .instrument(call)
        .await;

        let ok = spans.named("SELECT numbers");
        assert_eq!(ok.len(), 1);
        let (parent, fields) = &ok[0];
        assert_eq!(parent.as_deref(), Some("call"));
        assert_eq!(fields["otel.kind"], "client");
        assert_eq!(fields["db.system"], "sqlite");
        assert_eq!(fields["db.operation"], "SELECT");
        assert_eq!(fields["db.collection.name"], "numbers");
        assert_eq!(fields["db.query.text"], "SELECT ?1");
        assert!(!fields.contains_key("otel.status_code"));
        assert!(
            fields.values().all(|v| !v.contains("secret value")),
            "bound values never reach the span: {fields:?}"
        );

        let failed = spans.named("SELECT missing");
        assert_eq!(failed.len(), 1);
        let (_, fields) = &failed[0];
        assert_eq!(fields["otel.status_code"], "ERROR");
        assert_eq!(fields["error.type"], "database");
        assert!(fields.contains_key("db.response.status_code"), "{fields:?}");
        assert!(
            fields["otel.status_description"].contains("no such table"),
            "{fields:?}"
        );
        db.close().await;
    }
}
