//! One store implementation for both backends: what differs between PostgreSQL and
//! SQLite, in one small trait, and the one place a service's store is chosen.
//!
//! A service writes its store once, generic over [`Backend`], with its statements in
//! PostgreSQL's spelling (`$1` parameters). [`Backend`] supplies the little that
//! differs: how a parameter is written, how an id column holds a UUID, how a column is
//! compared ignoring case, and how a column is matched against a set of ids. The store
//! trait is implemented on the pool itself, and [`open`] hands the service the pool the
//! database URL chose.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::Postgres;
use sqlx::sqlite::Sqlite;
use sqlx::{
    Decode, Encode, Executor, FromRow, IntoArguments, Pool, QueryBuilder, Transaction, Type,
};
use uuid::Uuid;

use crate::Database;
use crate::observe::{self, TraceQuery};

/// A Rust value held in a column of backend `D`: bound to statements and read from rows.
pub trait Column<D: sqlx::Database>:
    for<'q> Encode<'q, D> + for<'r> Decode<'r, D> + Type<D> + Send + Sync + Unpin + 'static
{
}

impl<D, T> Column<D> for T
where
    D: sqlx::Database,
    T: for<'q> Encode<'q, D> + for<'r> Decode<'r, D> + Type<D> + Send + Sync + Unpin + 'static,
{
}

/// Opens a transaction on `pool`, inside its `BEGIN` span.
pub async fn begin<D: Backend>(pool: &Pool<D>) -> Result<Transaction<'static, D>, sqlx::Error> {
    pool.begin()
        .traced(observe::query_span(D::SYSTEM, "BEGIN", "", "BEGIN"))
        .await
}

/// Commits `tx`, inside its `COMMIT` span.
pub async fn commit<D: Backend>(tx: Transaction<'_, D>) -> Result<(), sqlx::Error> {
    tx.commit()
        .traced(observe::query_span(D::SYSTEM, "COMMIT", "", "COMMIT"))
        .await
}

/// Rolls `tx` back, inside its `ROLLBACK` span.
pub async fn rollback<D: Backend>(tx: Transaction<'_, D>) -> Result<(), sqlx::Error> {
    tx.rollback()
        .traced(observe::query_span(D::SYSTEM, "ROLLBACK", "", "ROLLBACK"))
        .await
}

/// A stored id that does not read back as a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a UUID")]
pub struct NotAUuid(pub String);

/// What a store written once needs to know about the backend it runs on.
pub trait Backend: sqlx::Database<Arguments: IntoArguments<Self>> {
    /// `db.system` of the query spans.
    const SYSTEM: &'static str;

    /// How an id column holds a UUID.
    type Uuid: Column<Self> + Clone;

    /// `id` as its column holds it.
    fn uuid_to_db(id: Uuid) -> Self::Uuid;

    /// An id read from its column.
    fn uuid_from_db(stored: Self::Uuid) -> Result<Uuid, NotAUuid>;

    /// `sql`, written with PostgreSQL's numbered parameters (`$1`), as this backend's
    /// query spans should show it.
    fn sql(sql: &str) -> String;

    /// `column` equal to `parameter` ignoring case, in the form the index of each
    /// backend's migration serves: `lower(column)` on PostgreSQL, the `NOCASE`
    /// collation on SQLite.
    fn equals_ignoring_case(column: &str, parameter: &str) -> String;

    /// Appends "`column` is one of `ids`" to `query`.
    fn push_any_of(query: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]);
}

impl Backend for Postgres {
    const SYSTEM: &'static str = observe::POSTGRESQL;

    /// PostgreSQL has a UUID type.
    type Uuid = Uuid;

    fn uuid_to_db(id: Uuid) -> Uuid {
        id
    }

    fn uuid_from_db(stored: Uuid) -> Result<Uuid, NotAUuid> {
        Ok(stored)
    }

    fn sql(sql: &str) -> String {
        sql.to_owned()
    }

    fn equals_ignoring_case(column: &str, parameter: &str) -> String {
        format!("lower({column}) = lower({parameter})")
    }

    fn push_any_of(query: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]) {
        // One array parameter: one prepared statement whatever the number of ids.
        query
            .push(format_args!("{column} = ANY("))
            .push_bind(ids.to_vec())
            .push(")");
    }
}

impl Backend for Sqlite {
    const SYSTEM: &'static str = observe::SQLITE;

    /// Lower-case hyphenated text, whose order is the UUIDs' order, so keyset paging by
    /// id works the same as on PostgreSQL.
    type Uuid = String;

    fn uuid_to_db(id: Uuid) -> String {
        id.hyphenated().to_string()
    }

    fn uuid_from_db(stored: String) -> Result<Uuid, NotAUuid> {
        Uuid::parse_str(&stored).map_err(|_| NotAUuid(stored))
    }

    fn sql(sql: &str) -> String {
        // SQLite reads `$1` too, but `?1` is its own spelling, and the one operators
        // expect in its query spans.
        sql.replace('$', "?")
    }

    fn equals_ignoring_case(column: &str, parameter: &str) -> String {
        format!("{column} = {parameter} COLLATE NOCASE")
    }

    fn push_any_of(query: &mut QueryBuilder<Self>, column: &str, ids: &[Uuid]) {
        query.push(format_args!("{column} IN ("));
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(Self::uuid_to_db(*id));
        }
        query.push(")");
    }
}

/// The store of the backend `database`'s URL chose.
///
/// A service implements its store trait once, on the pool of every [`Backend`]
/// (`impl<D: Backend> UserStore for Pool<D>`). `postgres` and `sqlite` only turn the
/// chosen pool into the service's trait object, as `|postgres| postgres` does: Rust
/// cannot make a trait object of a trait this crate does not know.
pub fn open<S: ?Sized>(
    database: &Database,
    postgres: fn(Arc<Pool<Postgres>>) -> Arc<S>,
    sqlite: fn(Arc<Pool<Sqlite>>) -> Arc<S>,
) -> Arc<S> {
    match database {
        Database::Postgres(pool) => postgres(Arc::new(pool.clone())),
        Database::Sqlite(pool) => sqlite(Arc::new(pool.clone())),
    }
}

/// Ends `query`, a `SELECT` from `table` that stops inside its `WHERE` clause, with one
/// keyset page of rows ordered by `id`, newest first (those older than `after`, at most
/// `limit` of them), and fetches them from `pool` inside a query span.
///
/// Paging on the primary key makes every page cost the same however deep it is.
pub async fn fetch_page<D, R>(
    pool: &Pool<D>,
    mut query: QueryBuilder<D>,
    table: &str,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<R>, sqlx::Error>
where
    D: Backend,
    i64: Column<D>,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    R: for<'r> FromRow<'r, D::Row> + Send + Unpin,
{
    if let Some(after) = after {
        query.push(" AND id < ").push_bind(D::uuid_to_db(after));
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    let span = observe::query_span(D::SYSTEM, "SELECT", table, query.sql().as_str());
    query.build_query_as().fetch_all(pool).traced(span).await
}

/// Now, at the microsecond precision both backends keep, so that what a write returns
/// equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_numbers_its_parameters_its_own_way() {
        assert_eq!(
            Sqlite::sql("SELECT a FROM t WHERE a = $1 AND b = $2"),
            "SELECT a FROM t WHERE a = ?1 AND b = ?2"
        );
        assert_eq!(Postgres::sql("SELECT $1"), "SELECT $1");
    }

    #[test]
    fn sqlite_ids_are_text_that_sorts_like_the_uuids() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(Sqlite::uuid_to_db(a) < Sqlite::uuid_to_db(b));
        assert_eq!(Sqlite::uuid_from_db(Sqlite::uuid_to_db(a)).unwrap(), a);
        assert!(Sqlite::uuid_from_db("nope".to_owned()).is_err());
    }

    #[test]
    fn id_sets_take_one_array_on_postgres_and_a_list_on_sqlite() {
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let mut pg = QueryBuilder::<Postgres>::new("SELECT 1 FROM t WHERE ");
        Postgres::push_any_of(&mut pg, "id", &ids);
        assert_eq!(pg.sql().as_str(), "SELECT 1 FROM t WHERE id = ANY($1)");
        let mut lite = QueryBuilder::<Sqlite>::new("SELECT 1 FROM t WHERE ");
        Sqlite::push_any_of(&mut lite, "id", &ids);
        assert!(
            lite.sql()
                .as_str()
                .starts_with("SELECT 1 FROM t WHERE id IN (?")
        );
    }
}
