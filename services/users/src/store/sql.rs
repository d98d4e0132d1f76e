//! [`UserStore`] in SQL, written once for PostgreSQL and SQLite.
//!
//! The statements are in PostgreSQL's spelling; [`Backend`] adapts what differs: the
//! parameters SQLite numbers `?1`, ids it keeps as text, and how each backend matches
//! an email ignoring case with the index its migration created.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::{Backend, Column, TraceQuery, fetch_page, now, query_span};
use sqlx::{AssertSqlSafe, ColumnIndex, Executor, Pool, QueryBuilder};

use super::{NewUser, StoreError, UserChanges, UserStore, user_from_columns};
use crate::domain::{Email, PasswordHash, User, UserId, role_to_db};

type Row<K> = (K, String, String, String, DateTime<Utc>, DateTime<Utc>);
type CredentialsRow<K> = (
    K,
    String,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
);

const COLUMNS: &str = "id, email, display_name, role, create_time, update_time";

fn to_user<D: Backend>(row: Row<D::Uuid>) -> Result<User, StoreError> {
    let (id, email, name, role, created, updated) = row;
    let id = D::uuid_from_db(id)
        .map_err(|e| platform_db::StoreError::Corrupt(format!("user id {e}")))?;
    user_from_columns(id.into(), &email, &name, &role, created, updated)
}

fn credentials_from_row<D: Backend>(
    (id, email, name, role, created, updated, hash): CredentialsRow<D::Uuid>,
) -> Result<(User, PasswordHash), StoreError> {
    let user = to_user::<D>((id, email, name, role, created, updated))?;
    Ok((user, PasswordHash::new(hash)))
}

fn key<D: Backend>(id: UserId) -> D::Uuid {
    D::uuid_to_db(id.as_uuid())
}

/// Accounts in the database of backend `D`: the pool is the store.
#[async_trait]
impl<D: Backend> UserStore for Pool<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    String: Column<D>,
    Option<String>: Column<D>,
    i64: Column<D>,
    Vec<u8>: Column<D>,
    DateTime<Utc>: Column<D>,
{
    async fn create(&self, user: &NewUser) -> Result<User, StoreError> {
        let sql = D::sql(
            "INSERT INTO users (id, email, display_name, password_hash, role, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             RETURNING id, email, display_name, role, create_time, update_time",
        );
        let row: Row<D::Uuid> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(user.id))
            .bind(user.email.as_str().to_owned())
            .bind(user.display_name.as_str().to_owned())
            .bind(user.password_hash.as_str().to_owned())
            .bind(role_to_db(user.role).to_owned())
            .bind(now())
            .fetch_one(self)
            .traced(query_span(D::SYSTEM, "INSERT", "users", &sql))
            .await?;
        to_user::<D>(row)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = D::sql(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"));
        let row: Option<Row<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(id))
            .fetch_optional(self)
            .traced(query_span(D::SYSTEM, "SELECT", "users", &sql))
            .await?;
        row.map(to_user::<D>).transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, StoreError> {
        let matches = D::equals_ignoring_case("email", "$1");
        credentials_where(self, &matches, email.as_str().to_owned()).await
    }

    async fn credentials_by_id(
        &self,
        id: UserId,
    ) -> Result<Option<(User, PasswordHash)>, StoreError> {
        credentials_where(self, "id = $1", key::<D>(id)).await
    }

    async fn list(&self, limit: u32, after: Option<UserId>) -> Result<Vec<User>, StoreError> {
        let query = QueryBuilder::<D>::new(format!("SELECT {COLUMNS} FROM users WHERE TRUE"));
        let after = after.map(UserId::as_uuid);
        let rows: Vec<Row<D::Uuid>> = fetch_page(self, query, "users", after, limit).await?;
        rows.into_iter().map(to_user::<D>).collect()
    }

    async fn update(&self, id: UserId, changes: &UserChanges) -> Result<Option<User>, StoreError> {
        let sql = D::sql(&format!(
            "UPDATE users SET \
               display_name = COALESCE($2, display_name), \
               password_hash = COALESCE($3, password_hash), \
               role = COALESCE($4, role), \
               update_time = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        ));
        let row: Option<Row<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(id))
            .bind(changes.display_name.as_ref().map(|n| n.as_str().to_owned()))
            .bind(
                changes
                    .password_hash
                    .as_ref()
                    .map(|h| h.as_str().to_owned()),
            )
            .bind(changes.role.map(|r| role_to_db(r).to_owned()))
            .bind(now())
            .fetch_optional(self)
            .traced(query_span(D::SYSTEM, "UPDATE", "users", &sql))
            .await?;
        row.map(to_user::<D>).transpose()
    }

    async fn delete(&self, id: UserId) -> Result<bool, StoreError> {
        // The account and its UserDeleted event commit together, or neither does.
        let mut tx = platform_db::begin(self).await?;
        let sql = D::sql("DELETE FROM users WHERE id = $1 RETURNING id");
        let deleted: Option<(D::Uuid,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(key::<D>(id))
            .fetch_optional(&mut *tx)
            .traced(query_span(D::SYSTEM, "DELETE", "users", &sql))
            .await?;
        if deleted.is_none() {
            return Ok(false);
        }
        platform_events::enqueue::<D>(&mut tx, &crate::events::user_deleted(id, now())).await?;
        platform_db::commit(tx).await?;
        Ok(true)
    }
}

/// The account `condition` picks, with its password hash; `condition` compares a column
/// with `$1`, which is `value`.
async fn credentials_where<'e, D, E>(
    executor: E,
    condition: &str,
    value: impl Column<D>,
) -> Result<Option<(User, PasswordHash)>, StoreError>
where
    D: Backend,
    E: Executor<'e, Database = D>,
    CredentialsRow<D::Uuid>: for<'r> sqlx::FromRow<'r, D::Row>,
{
    let sql = D::sql(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE {condition}"
    ));
    let row: Option<CredentialsRow<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(value)
        .fetch_optional(executor)
        .traced(query_span(D::SYSTEM, "SELECT", "users", &sql))
        .await?;
    row.map(credentials_from_row::<D>).transpose()
}
