//! [`UserStore`] on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform_db::observe::POSTGRESQL;
use platform_db::{TraceQuery, query_span};
use sqlx::PgPool;
use uuid::Uuid;

use super::{NewUser, StoreError, UserChanges, UserStore, now, user_from_columns};
use crate::domain::{Email, PasswordHash, User, UserId, role_to_db};

type Row = (Uuid, String, String, String, DateTime<Utc>, DateTime<Utc>);
type CredentialsRow = (
    Uuid,
    String,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
);

const COLUMNS: &str = "id, email, display_name, role, create_time, update_time";

fn to_user(row: Row) -> Result<User, StoreError> {
    let (id, email, name, role, created, updated) = row;
    user_from_columns(id.into(), &email, &name, &role, created, updated)
}

/// Accounts in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgUserStore {
    pool: PgPool,
}

impl PgUserStore {
    /// A store over `pool`, whose database is migrated.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn create(&self, user: &NewUser) -> Result<User, StoreError> {
        let at = now();
        let sql = "INSERT INTO users (id, email, display_name, password_hash, role, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             RETURNING id, email, display_name, role, create_time, update_time";
        let row: Row = sqlx::query_as(sql)
            .bind(user.id.as_uuid())
            .bind(user.email.as_str())
            .bind(user.display_name.as_str())
            .bind(user.password_hash.as_str())
            .bind(role_to_db(user.role))
            .bind(at)
            .fetch_one(&self.pool)
            .traced(query_span(POSTGRESQL, "INSERT", "users", sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        to_user(row)
    }

    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "users", &sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(to_user).transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)");
        let row: Option<CredentialsRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "users", &sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(|(id, email, name, role, created, updated, hash)| {
            to_user((id, email, name, role, created, updated)).map(|u| (u, PasswordHash::new(hash)))
        })
        .transpose()
    }

    async fn list(&self, limit: u32, after: Option<UserId>) -> Result<Vec<User>, StoreError> {
        // Keyset paging: `id < $1` uses the primary key index, so every page costs the
        // same however deep it is.
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(after.map(|id| id.as_uuid()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .traced(query_span(POSTGRESQL, "SELECT", "users", &sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.into_iter().map(to_user).collect()
    }

    async fn update(&self, id: UserId, changes: &UserChanges) -> Result<Option<User>, StoreError> {
        let sql = format!(
            "UPDATE users SET \
               display_name = COALESCE($2, display_name), \
               password_hash = COALESCE($3, password_hash), \
               role = COALESCE($4, role), \
               update_time = $5 \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(id.as_uuid())
            .bind(changes.display_name.as_ref().map(|n| n.as_str()))
            .bind(changes.password_hash.as_ref().map(PasswordHash::as_str))
            .bind(changes.role.map(role_to_db))
            .bind(now())
            .fetch_optional(&self.pool)
            .traced(query_span(POSTGRESQL, "UPDATE", "users", &sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(to_user).transpose()
    }

    async fn delete(&self, id: UserId) -> Result<bool, StoreError> {
        let sql = "DELETE FROM users WHERE id = $1";
        let result = sqlx::query(sql)
            .bind(id.as_uuid())
            .execute(&self.pool)
            .traced(query_span(POSTGRESQL, "DELETE", "users", sql))
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(result.rows_affected() > 0)
    }
}
