//! [`SessionStore`] in SQL, written once for PostgreSQL and SQLite, in the same way as
//! the account store (`sql.rs`).

use async_trait::async_trait;
use platform_db::{Backend, Column, TraceQuery, query_span};
use sqlx::{AssertSqlSafe, ColumnIndex, Executor, Pool};
use uuid::Uuid;

use super::{NewRefreshToken, Rotation, SessionStore, SignInFailures, StoreError};
use crate::domain::{Email, UserId};
use crate::sessions::RefreshTokenHash;

fn hash_column(hash: &RefreshTokenHash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

fn user_id<D: Backend>(stored: D::Uuid) -> Result<UserId, StoreError> {
    let id = D::uuid_from_db(stored)
        .map_err(|e| platform_db::StoreError::Corrupt(format!("refresh family user id {e}")))?;
    Ok(id.into())
}

fn count(failures: i64) -> u64 {
    u64::try_from(failures).unwrap_or(0)
}

/// What is known of a presented token that could not be rotated.
type TokenState<K> = (K, K, Option<i64>, Option<i64>);

#[async_trait]
impl<D: Backend> SessionStore for Pool<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    i64: Column<D>,
    Option<i64>: Column<D>,
    Vec<u8>: Column<D>,
    String: Column<D>,
{
    async fn start_family(&self, user: UserId, first: &NewRefreshToken) -> Result<(), StoreError> {
        let family = Uuid::now_v7();
        let mut tx = platform_db::begin(self).await?;
        let sql =
            D::sql("INSERT INTO refresh_families (id, user_id, created_at) VALUES ($1, $2, $3)");
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(D::uuid_to_db(family))
            .bind(D::uuid_to_db(user.as_uuid()))
            .bind(first.now)
            .execute(&mut *tx)
            .traced(query_span(D::SYSTEM, "INSERT", "refresh_families", &sql))
            .await?;
        insert_token::<D>(&mut tx, family, first).await?;
        platform_db::commit(tx).await?;
        Ok(())
    }

    async fn rotate(
        &self,
        presented: &RefreshTokenHash,
        next: &NewRefreshToken,
    ) -> Result<Rotation, StoreError> {
        // The UPDATE is the transaction's first statement: on SQLite it takes the write
        // lock at once, on PostgreSQL a concurrent exchange of the same token waits for
        // this one to commit, then finds `retired_at` set and updates nothing.
        let mut tx = platform_db::begin(self).await?;
        let sql = D::sql(
            "UPDATE refresh_tokens SET retired_at = $2 \
             WHERE token_hash = $1 AND retired_at IS NULL AND expires_at > $2 \
               AND family_id IN (SELECT id FROM refresh_families WHERE revoked_at IS NULL) \
             RETURNING family_id",
        );
        let retired: Option<(D::Uuid,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(hash_column(presented))
            .bind(next.now)
            .fetch_optional(&mut *tx)
            .traced(query_span(D::SYSTEM, "UPDATE", "refresh_tokens", &sql))
            .await?;

        if let Some((family,)) = retired {
            let family = D::uuid_from_db(family)
                .map_err(|e| platform_db::StoreError::Corrupt(format!("refresh family id {e}")))?;
            insert_token::<D>(&mut tx, family, next).await?;
            let sql = D::sql("SELECT user_id FROM refresh_families WHERE id = $1");
            let (user,): (D::Uuid,) = sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(D::uuid_to_db(family))
                .fetch_one(&mut *tx)
                .traced(query_span(D::SYSTEM, "SELECT", "refresh_families", &sql))
                .await?;
            platform_db::commit(tx).await?;
            return Ok(Rotation::Rotated(user_id::<D>(user)?));
        }

        // Not exchangeable: find out why, still inside the transaction, so that a reuse
        // revokes the family before anyone can exchange its newest token again.
        let sql = D::sql(
            "SELECT f.id, f.user_id, f.revoked_at, t.retired_at \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
             WHERE t.token_hash = $1",
        );
        let state: Option<TokenState<D::Uuid>> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(hash_column(presented))
            .fetch_optional(&mut *tx)
            .traced(query_span(D::SYSTEM, "SELECT", "refresh_tokens", &sql))
            .await?;
        let outcome = match state {
            Some((family, user, None, Some(_))) => {
                let sql = D::sql(
                    "UPDATE refresh_families SET revoked_at = $2 \
                     WHERE id = $1 AND revoked_at IS NULL",
                );
                sqlx::query(AssertSqlSafe(sql.as_str()))
                    .bind(family)
                    .bind(next.now)
                    .execute(&mut *tx)
                    .traced(query_span(D::SYSTEM, "UPDATE", "refresh_families", &sql))
                    .await?;
                Rotation::Reused(user_id::<D>(user)?)
            }
            _ => Rotation::Refused,
        };
        platform_db::commit(tx).await?;
        Ok(outcome)
    }

    async fn revoke_family_of(
        &self,
        token: &RefreshTokenHash,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = D::sql(
            "UPDATE refresh_families SET revoked_at = $2 \
             WHERE revoked_at IS NULL \
               AND id IN (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) \
             RETURNING id",
        );
        let revoked: Vec<(D::Uuid,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(hash_column(token))
            .bind(now)
            .fetch_all(self)
            .traced(query_span(D::SYSTEM, "UPDATE", "refresh_families", &sql))
            .await?;
        Ok(!revoked.is_empty())
    }

    async fn revoke_all(&self, user: UserId, now: i64) -> Result<u64, StoreError> {
        let sql = D::sql(
            "UPDATE refresh_families SET revoked_at = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
        );
        let revoked: Vec<(D::Uuid,)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(D::uuid_to_db(user.as_uuid()))
            .bind(now)
            .fetch_all(self)
            .traced(query_span(D::SYSTEM, "UPDATE", "refresh_families", &sql))
            .await?;
        Ok(revoked.len() as u64)
    }

    async fn sign_in_failures(&self, email: &Email) -> Result<Option<SignInFailures>, StoreError> {
        let sql = D::sql("SELECT failures, last_failure_at FROM sign_in_failures WHERE email = $1");
        let row: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(email.as_str().to_owned())
            .fetch_optional(self)
            .traced(query_span(D::SYSTEM, "SELECT", "sign_in_failures", &sql))
            .await?;
        Ok(row.map(|(failures, last_failure_at)| SignInFailures {
            failures: count(failures),
            last_failure_at,
        }))
    }

    async fn record_sign_in_failure(
        &self,
        email: &Email,
        now: i64,
        forget_before: i64,
    ) -> Result<SignInFailures, StoreError> {
        // One statement, so failures racing on several replicas all count.
        let sql = D::sql(
            "INSERT INTO sign_in_failures (email, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (email) DO UPDATE SET \
               failures = CASE WHEN sign_in_failures.last_failure_at < $3 THEN 1 \
                               ELSE sign_in_failures.failures + 1 END, \
               last_failure_at = $2 \
             RETURNING failures, last_failure_at",
        );
        let (failures, last_failure_at): (i64, i64) = sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(email.as_str().to_owned())
            .bind(now)
            .bind(forget_before)
            .fetch_one(self)
            .traced(query_span(D::SYSTEM, "INSERT", "sign_in_failures", &sql))
            .await?;
        Ok(SignInFailures {
            failures: count(failures),
            last_failure_at,
        })
    }

    async fn clear_sign_in_failures(&self, email: &Email) -> Result<(), StoreError> {
        let sql = D::sql("DELETE FROM sign_in_failures WHERE email = $1");
        sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(email.as_str().to_owned())
            .execute(self)
            .traced(query_span(D::SYSTEM, "DELETE", "sign_in_failures", &sql))
            .await?;
        Ok(())
    }
}

async fn insert_token<D: Backend>(
    tx: &mut sqlx::Transaction<'_, D>,
    family: Uuid,
    token: &NewRefreshToken,
) -> Result<(), StoreError>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    i64: Column<D>,
    Vec<u8>: Column<D>,
{
    let sql = D::sql(
        "INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    );
    sqlx::query(AssertSqlSafe(sql.as_str()))
        .bind(hash_column(&token.hash))
        .bind(D::uuid_to_db(family))
        .bind(token.now)
        .bind(token.expires_at)
        .execute(&mut **tx)
        .traced(query_span(D::SYSTEM, "INSERT", "refresh_tokens", &sql))
        .await?;
    Ok(())
}
