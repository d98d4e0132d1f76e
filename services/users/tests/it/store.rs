//! The store suite: every `UserStore` behaviour, on SQLite and on PostgreSQL.

use std::collections::HashSet;
use std::sync::Arc;

use platform_db::{Database, DatabaseSettings};
use platform_testing::TestDatabase;
use users::domain::{DisplayName, Email, PasswordHash, Role, UserId};
use users::sessions::RefreshToken;
use users::store::{
    self, MIGRATIONS, NewRefreshToken, NewUser, Rotation, StoreError, UserChanges, UserStore,
};

async fn open(db: &TestDatabase) -> (Database, Arc<dyn UserStore>) {
    let database = Database::connect_lazy(&DatabaseSettings::new(db.url())).unwrap();
    database.migrate(MIGRATIONS).await.unwrap();
    let store = store::open(&database);
    (database, store)
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: UserId::generate(),
        email: Email::parse(email).unwrap(),
        display_name: DisplayName::parse("Ada Lovelace").unwrap(),
        password_hash: PasswordHash::new(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        ),
        role: Role::User,
    }
}

async fn creates_and_reads_back(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let new = new_user("ada@example.com");
    let created = store.create(&new).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.email.as_str(), "ada@example.com");
    assert_eq!(created.role, Role::User);
    assert_eq!(created.create_time, created.update_time);
    let read = store.get(new.id).await.unwrap().expect("stored");
    assert_eq!(read, created, "what a write returns is what a read returns");
    assert!(store.get(UserId::generate()).await.unwrap().is_none());
}

async fn emails_are_unique_regardless_of_case(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    store.create(&new_user("ada@example.com")).await.unwrap();
    // The domain type lower-cases; write a mixed-case row around it to prove the
    // database itself enforces the rule.
    let mut twin = new_user("other@example.com");
    twin.email = Email::parse("ADA@example.com").unwrap();
    let err = store.create(&twin).await.unwrap_err();
    assert!(matches!(err, StoreError::EmailTaken), "{err:?}");
}

async fn finds_credentials_by_email(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let new = new_user("grace@example.com");
    store.create(&new).await.unwrap();
    let (user, hash) = store
        .credentials(&Email::parse("Grace@Example.com").unwrap())
        .await
        .unwrap()
        .expect("found");
    assert_eq!(user.id, new.id);
    assert_eq!(hash, new.password_hash);
    assert!(
        store
            .credentials(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

async fn lists_every_user_once_newest_first_by_keyset(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(
            store
                .create(&new_user(&format!("u{i}@example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(5, after).await.unwrap();
        assert!(page.len() <= 5);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.id);
        seen.extend(page.into_iter().map(|u| u.id));
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each exactly once");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
}

async fn updates_only_what_is_given(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let created = store.create(&new_user("ada@example.com")).await.unwrap();
    let renamed = store
        .update(
            created.id,
            &UserChanges {
                display_name: Some(DisplayName::parse("Countess").unwrap()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(renamed.display_name.as_str(), "Countess");
    assert_eq!(renamed.role, Role::User);
    assert_eq!(renamed.create_time, created.create_time);
    assert!(renamed.update_time >= created.update_time);

    let promoted = store
        .update(
            created.id,
            &UserChanges {
                role: Some(Role::Admin),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap()
        .expect("exists");
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(promoted.display_name.as_str(), "Countess");

    let new_hash = PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3".to_owned());
    store
        .update(
            created.id,
            &UserChanges {
                password_hash: Some(new_hash.clone()),
                ..UserChanges::default()
            },
        )
        .await
        .unwrap();
    let (_, hash) = store.credentials(&created.email).await.unwrap().unwrap();
    assert_eq!(hash, new_hash);

    assert!(
        store
            .update(UserId::generate(), &UserChanges::default())
            .await
            .unwrap()
            .is_none()
    );
}

async fn deletes_once(db: TestDatabase) {
    let (_db, store) = open(&db).await;
    let created = store.create(&new_user("ada@example.com")).await.unwrap();
    assert!(store.delete(created.id).await.unwrap());
    assert!(!store.delete(created.id).await.unwrap());
    assert!(store.get(created.id).await.unwrap().is_none());
    // The email is free again.
    store.create(&new_user("ada@example.com")).await.unwrap();
}

async fn migrations_are_idempotent(db: TestDatabase) {
    let (database, _store) = open(&db).await;
    database.migrate(MIGRATIONS).await.unwrap();
}

async fn a_database_that_goes_away_is_unavailable(db: TestDatabase) {
    let (database, store) = open(&db).await;
    database.close().await;
    let err = store.get(UserId::generate()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Db(platform_db::StoreError::Unavailable(_))),
        "{err:?}"
    );
}

fn token_at(now: i64) -> (RefreshToken, NewRefreshToken) {
    let token = RefreshToken::generate().unwrap();
    let stored = NewRefreshToken {
        hash: token.hash(),
        now,
        expires_at: now + 100,
    };
    (token, stored)
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(db: TestDatabase) {
    let (database, store) = open(&db).await;
    let sessions = store::open_sessions(&database);
    let ada = store.create(&new_user("ada@example.com")).await.unwrap();
    let (first, stored) = token_at(1000);
    sessions.start_family(ada.id, &stored).await.unwrap();
    let (other, stored) = token_at(1000);
    sessions.start_family(ada.id, &stored).await.unwrap();

    let (second, next) = token_at(1010);
    assert_eq!(
        sessions.rotate(&first.hash(), &next).await.unwrap(),
        Rotation::Rotated(ada.id)
    );
    let (_, unused) = token_at(1020);
    assert_eq!(
        sessions.rotate(&first.hash(), &unused).await.unwrap(),
        Rotation::Reused(ada.id)
    );
    assert_eq!(
        sessions.rotate(&second.hash(), &unused).await.unwrap(),
        Rotation::Refused,
        "the whole family is revoked"
    );
    let (_, later) = token_at(1100);
    assert_eq!(
        sessions.rotate(&other.hash(), &later).await.unwrap(),
        Rotation::Refused,
        "expired at 1100"
    );
    let (never, _) = token_at(1000);
    assert_eq!(
        sessions.rotate(&never.hash(), &unused).await.unwrap(),
        Rotation::Refused
    );

    let (third, stored) = token_at(1000);
    sessions.start_family(ada.id, &stored).await.unwrap();
    assert!(
        sessions
            .revoke_family_of(&third.hash(), 1001)
            .await
            .unwrap()
    );
    assert!(
        !sessions
            .revoke_family_of(&third.hash(), 1002)
            .await
            .unwrap()
    );
    let (_, stored) = token_at(1000);
    sessions.start_family(ada.id, &stored).await.unwrap();
    sessions
        .start_family(ada.id, &token_at(1000).1)
        .await
        .unwrap();
    // The two new ones, and the one whose token merely expired.
    assert_eq!(sessions.revoke_all(ada.id, 1003).await.unwrap(), 3);
    assert_eq!(sessions.revoke_all(ada.id, 1004).await.unwrap(), 0);
}

async fn sign_in_failures_count_forget_and_clear(db: TestDatabase) {
    let (database, _) = open(&db).await;
    let sessions = store::open_sessions(&database);
    let ada = Email::parse("ada@example.com").unwrap();
    let bob = Email::parse("bob@example.com").unwrap();
    assert!(sessions.sign_in_failures(&ada).await.unwrap().is_none());
    for (i, now) in [100, 110, 120].into_iter().enumerate() {
        let recorded = sessions.record_sign_in_failure(&ada, now, 0).await.unwrap();
        assert_eq!(recorded.failures, i as u64 + 1);
        assert_eq!(recorded.last_failure_at, now);
    }
    sessions.record_sign_in_failure(&bob, 120, 0).await.unwrap();
    let read = sessions.sign_in_failures(&ada).await.unwrap().unwrap();
    assert_eq!((read.failures, read.last_failure_at), (3, 120));
    // The last failure is older than `forget_before`: counting starts again.
    let fresh = sessions
        .record_sign_in_failure(&ada, 500, 200)
        .await
        .unwrap();
    assert_eq!(fresh.failures, 1);
    sessions.clear_sign_in_failures(&ada).await.unwrap();
    assert!(sessions.sign_in_failures(&ada).await.unwrap().is_none());
    assert_eq!(
        sessions
            .sign_in_failures(&bob)
            .await
            .unwrap()
            .unwrap()
            .failures,
        1
    );
}

/// The outbox's events: (subject, payload).
async fn outbox(database: &Database) -> Vec<(String, Vec<u8>)> {
    let sql = "SELECT subject, payload FROM outbox ORDER BY seq";
    match database {
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn a_deletion_commits_with_its_event_or_not_at_all(db: TestDatabase) {
    use prost::Message;
    let (database, store) = open(&db).await;
    let created = store.create(&new_user("ada@example.com")).await.unwrap();
    assert!(store.delete(created.id).await.unwrap());
    assert!(!store.delete(created.id).await.unwrap());
    let events = outbox(&database).await;
    assert_eq!(
        events.len(),
        1,
        "one event per deleted account, none for a miss"
    );
    assert_eq!(events[0].0, "users.v1.user.deleted");
    let event = platform_proto::users::v1::UserDeleted::decode(events[0].1.as_slice()).unwrap();
    assert_eq!(event.user_id, created.id.to_string());
    assert!(event.occur_time.is_some());

    // An outbox that cannot be written fails the deletion: the account stays.
    let kept = store.create(&new_user("bob@example.com")).await.unwrap();
    let rename = |sql: &'static str| {
        let database = database.clone();
        async move {
            match &database {
                Database::Postgres(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
                Database::Sqlite(pool) => drop(sqlx::query(sql).execute(pool).await.unwrap()),
            }
        }
    };
    rename("ALTER TABLE outbox RENAME TO outbox_away").await;
    assert!(store.delete(kept.id).await.is_err());
    rename("ALTER TABLE outbox_away RENAME TO outbox").await;
    assert!(store.get(kept.id).await.unwrap().is_some());
    assert_eq!(outbox(&database).await.len(), 1);
}

platform_testing::database_suite!(
    a_deletion_commits_with_its_event_or_not_at_all,
    refresh_tokens_rotate_once_and_reuse_revokes_the_family,
    sign_in_failures_count_forget_and_clear,
    creates_and_reads_back,
    emails_are_unique_regardless_of_case,
    finds_credentials_by_email,
    lists_every_user_once_newest_first_by_keyset,
    updates_only_what_is_given,
    deletes_once,
    migrations_are_idempotent,
    a_database_that_goes_away_is_unavailable,
);
