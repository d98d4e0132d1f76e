//! Sessions over gRPC, on SQLite and on PostgreSQL: refresh-token rotation and reuse
//! detection, sign-out, revocation when an account changes, roles read from the
//! account on every call, and the limit on failed sign-ins.
//!
//! Where time matters (expiry, the end of a lock-out) the API runs in this process
//! with a [`ManualClock`], its handlers called directly, over the same real database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform_auth::{ManualClock, Role};
use platform_db::Database;
use platform_proto::users::v1 as pb;
use platform_proto::users::v1::user_service_server::UserService;
use platform_testing::{PASSWORD, TestDatabase, code, refused};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use users::api::UsersApi;
use users::keys::Keys;
use users::password::Hasher;
use users::store::MIGRATIONS;

use crate::common::{TestApp, settings};

/// A password that is not the account's.
const WRONG: &str = "wrong guess";

/// `ada@example.com` signed up and signed in: her id and the whole token answer.
async fn ada(app: &TestApp) -> (String, pb::CreateTokenResponse) {
    let user = app.api.sign_up("ada@example.com").await;
    let session = app.session("ada@example.com").await;
    (user.id, session)
}

fn password_change(id: &str, new: &str, current: Option<&str>) -> pb::UpdateUserRequest {
    pb::UpdateUserRequest {
        id: id.to_owned(),
        password: Some(new.to_owned()),
        current_password: current.map(str::to_owned),
        ..Default::default()
    }
}

fn assert_refused(result: Result<pb::CreateTokenResponse, Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
}

async fn refresh_rotates_and_a_reused_token_ends_the_session(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (id, first) = ada(&app).await;

    let second = app.api.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(second.token_type, "Bearer");
    assert_eq!(second.expires_in, 300);
    assert_ne!(second.refresh_token, first.refresh_token);
    app.api
        .get_user(&id, &second.access_token)
        .await
        .expect("the new access token works");

    // The first token again: someone else holds a copy of the session. Both the copy
    // and the legitimate newest token stop working.
    assert_refused(app.api.refresh(&first.refresh_token).await, "reused token");
    assert_refused(
        app.api.refresh(&second.refresh_token).await,
        "newest token of a revoked session",
    );
    // Not a token of ours at all: the same answer.
    assert_refused(app.api.refresh("garbage").await, "garbage");
    let empty = refused(app.api.refresh("")).await;
    assert_eq!(empty.code(), Code::InvalidArgument);

    // Signing in again starts a new session.
    let again = app.session("ada@example.com").await;
    app.api.refresh(&again.refresh_token).await.unwrap();
    app.stop().await;
}

async fn concurrent_refreshes_of_one_token_succeed_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, session) = ada(&app).await;
    let attempts = (0..6).map(|_| {
        let api = app.api.clone();
        let token = session.refresh_token.clone();
        tokio::spawn(async move { api.refresh(&token).await })
    });
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(status) => assert_eq!(status.code(), Code::Unauthenticated, "{status:?}"),
        }
    }
    assert_eq!(succeeded, 1, "one exchange wins, the others are reuse");
    app.stop().await;
}

async fn signing_out_ends_one_session_and_is_idempotent(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, laptop) = ada(&app).await;
    let phone = app.session("ada@example.com").await;

    app.api.revoke(&laptop.refresh_token).await.unwrap();
    assert_refused(app.api.refresh(&laptop.refresh_token).await, "signed out");
    app.api
        .refresh(&phone.refresh_token)
        .await
        .expect("the other session goes on");

    // Again, unknown, or not even shaped like a token: still OK (RFC 7009).
    app.api.revoke(&laptop.refresh_token).await.unwrap();
    app.api.revoke("never issued").await.unwrap();
    let empty = refused(app.api.revoke("")).await;
    assert_eq!(empty.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn changing_ones_password_needs_the_current_one_and_ends_every_session(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (id, laptop) = ada(&app).await;
    let phone = app.session("ada@example.com").await;
    let new = "a whole new passphrase";

    let missing = refused(
        app.api
            .update_user(password_change(&id, new, None), &laptop.access_token),
    )
    .await;
    assert_eq!(missing.code(), Code::InvalidArgument);
    let details = missing.get_error_details();
    let field = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(field.field, "current_password");
    let wrong = app
        .api
        .update_user(
            password_change(&id, new, Some("not my password")),
            &laptop.access_token,
        )
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    app.api
        .refresh(&phone.refresh_token)
        .await
        .expect("refused changes end nothing");
    app.api
        .sign_in("ada@example.com", PASSWORD)
        .await
        .expect("and leave the password as it was");

    let phone = app.session("ada@example.com").await;
    app.api
        .update_user(
            password_change(&id, new, Some(PASSWORD)),
            &laptop.access_token,
        )
        .await
        .unwrap();
    assert_refused(app.api.refresh(&phone.refresh_token).await, "other session");
    assert_refused(app.api.refresh(&laptop.refresh_token).await, "own session");
    app.api.sign_in("ada@example.com", new).await.unwrap();

    // An admin resets a forgotten password without knowing it.
    let (_, admin_token) = app.admin("root@example.com").await;
    let session = app.api.create_token("ada@example.com", new).await.unwrap();
    app.api
        .update_user(
            password_change(&id, "reset by the operator today", None),
            &admin_token,
        )
        .await
        .unwrap();
    assert_refused(app.api.refresh(&session.refresh_token).await, "after reset");
    app.stop().await;
}

async fn a_demoted_admin_is_refused_at_once(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, root_token) = app.admin("root@example.com").await;
    let (id, _) = ada(&app).await;
    let promote = |role: pb::Role| pb::UpdateUserRequest {
        id: id.clone(),
        role: Some(role as i32),
        ..Default::default()
    };
    app.api
        .update_user(promote(pb::Role::Admin), &root_token)
        .await
        .unwrap();
    let as_admin = app.session("ada@example.com").await;
    app.api
        .list_users(10, "", &as_admin.access_token)
        .await
        .expect("an admin lists users");

    app.api
        .update_user(promote(pb::Role::User), &root_token)
        .await
        .unwrap();
    // Her access token still says `role: admin` and has minutes to live.
    let denied = refused(app.api.list_users(10, "", &as_admin.access_token)).await;
    assert_eq!(denied.code(), Code::PermissionDenied);
    let root = app.api.sign_up("someone@example.com").await;
    let hidden = refused(app.api.get_user(&root.id, &as_admin.access_token)).await;
    assert_eq!(
        hidden.code(),
        Code::NotFound,
        "others' accounts are hidden again"
    );
    assert_refused(
        app.api.refresh(&as_admin.refresh_token).await,
        "a session from before the role change",
    );
    app.stop().await;
}

async fn a_deleted_accounts_sessions_end(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (id, session) = ada(&app).await;
    app.api
        .delete_user(&id, &session.access_token)
        .await
        .unwrap();
    assert_refused(app.api.refresh(&session.refresh_token).await, "deleted");
    app.stop().await;
}

fn retry_delay(status: &Status) -> Duration {
    status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo with a delay")
}

async fn repeated_failures_lock_one_email_and_not_another(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.api.sign_up("ada@example.com").await;
    app.api.sign_up("bob@example.com").await;
    for email in ["ada@example.com", "nobody@example.com"] {
        for attempt in 1..=5 {
            let status = refused(app.api.sign_in(email, WRONG)).await;
            assert_eq!(status.code(), Code::Unauthenticated, "{email} #{attempt}");
        }
    }
    // Refused before any password check: the right password gets the same answer.
    let locked = refused(app.api.sign_in("ada@example.com", PASSWORD)).await;
    assert_eq!(locked.code(), Code::ResourceExhausted);
    let delay = retry_delay(&locked);
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(30),
        "{delay:?}"
    );
    // An email without an account locks the same way: no hint of which has one.
    let unknown = refused(app.api.sign_in("NoBody@example.com", PASSWORD)).await;
    assert_eq!(
        (unknown.code(), unknown.message()),
        (locked.code(), locked.message())
    );

    app.api
        .sign_in("bob@example.com", PASSWORD)
        .await
        .expect("another account is not affected");
    app.stop().await;
}

/// The API over `db` in this process, its time read from `clock`, with the settings
/// of the suite changed by `tweak`.
async fn api_at(
    db: &TestDatabase,
    dir: &std::path::Path,
    clock: &ManualClock,
    tweak: impl FnOnce(&mut users::Settings),
) -> (UsersApi, Database) {
    let mut settings = settings(db, dir);
    tweak(&mut settings);
    let database = Database::connect_lazy(&settings.database).unwrap();
    database.migrate(MIGRATIONS).await.unwrap();
    let hasher = Hasher::new(users::password::params(&settings).unwrap(), 2)
        .await
        .unwrap();
    let keys = Keys::load(&settings.auth).unwrap();
    let api = UsersApi::new(&database, hasher, keys, &settings).with_clock(Arc::new(clock.clone()));
    (api, database)
}

async fn sign_in(api: &UsersApi, password: &str) -> Result<pb::CreateTokenResponse, Status> {
    let request = Request::new(pb::CreateTokenRequest {
        email: "ada@example.com".to_owned(),
        password: password.to_owned(),
    });
    api.create_token(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn refresh(api: &UsersApi, token: &str) -> Result<pb::CreateTokenResponse, Status> {
    let request = Request::new(pb::RefreshTokenRequest {
        refresh_token: token.to_owned(),
    });
    api.refresh_token(request)
        .await
        .map(tonic::Response::into_inner)
}

async fn lockouts_double_end_and_reset_on_success(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (api, database) = api_at(&db, dir.path(), &clock, |_| {}).await;
    api.create_account("ada@example.com", "Ada", PASSWORD, Role::User)
        .await
        .unwrap();

    for _ in 0..5 {
        assert_eq!(code(sign_in(&api, WRONG).await), Code::Unauthenticated);
    }
    let locked = refused(sign_in(&api, PASSWORD)).await;
    assert_eq!(retry_delay(&locked), Duration::from_secs(30));

    clock.advance(Duration::from_secs(30));
    // The sixth failure doubles the lock-out.
    assert_eq!(code(sign_in(&api, WRONG).await), Code::Unauthenticated);
    let locked = refused(sign_in(&api, PASSWORD)).await;
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));
    clock.advance(Duration::from_secs(59));
    assert_eq!(code(sign_in(&api, PASSWORD).await), Code::ResourceExhausted);
    clock.advance(Duration::from_secs(1));
    assert_eq!(code(sign_in(&api, PASSWORD).await), Code::Ok);

    // The success started the count again.
    for _ in 0..4 {
        assert_eq!(code(sign_in(&api, WRONG).await), Code::Unauthenticated);
    }
    assert_eq!(code(sign_in(&api, PASSWORD).await), Code::Ok);
    database.close().await;
}

async fn refresh_tokens_expire(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::now();
    let (api, database) = api_at(&db, dir.path(), &clock, |s| {
        s.auth.refresh_token_ttl_secs = 3600
    })
    .await;
    api.create_account("ada@example.com", "Ada", PASSWORD, Role::User)
        .await
        .unwrap();
    let session = sign_in(&api, PASSWORD).await.unwrap();
    assert_eq!(session.refresh_expires_in, 3600);

    // Each refresh gives the session a fresh lifetime...
    clock.advance(Duration::from_secs(3599));
    let next = refresh(&api, &session.refresh_token).await.unwrap();
    clock.advance(Duration::from_secs(3599));
    let last = refresh(&api, &next.refresh_token).await.unwrap();
    // ...but one left unused for its lifetime is refused.
    clock.advance(Duration::from_secs(3600));
    assert_refused(refresh(&api, &last.refresh_token).await, "expired");
    database.close().await;
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn wrong_credentials_take_as_long_for_unknown_and_known_accounts(db: TestDatabase) {
    // A hash costly enough to dominate the database round trips, and no lock-out to
    // cut the attempts short.
    let app = TestApp::spawn_with(db, |s| {
        s.password.memory_kib = 8 * 1024;
        s.password.iterations = 2;
        s.sign_in.max_failures = 1000;
    })
    .await;
    app.api.sign_up("ada@example.com").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    // Interleaved, so a slow moment of the machine falls on both alike.
    for _ in 0..15 {
        for (email, samples) in [
            ("ada@example.com", &mut known),
            ("nobody@example.com", &mut unknown),
        ] {
            let started = Instant::now();
            let status = refused(app.api.sign_in(email, WRONG)).await;
            samples.push(started.elapsed());
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.message(), "invalid email or password");
        }
    }
    let ratio = median(unknown).as_secs_f64() / median(known).as_secs_f64();
    // Both do one full hash; an unknown account answered without one would be many
    // times faster.
    assert!((0.5..=2.0).contains(&ratio), "unknown/known = {ratio:.2}");
    app.stop().await;
}

platform_testing::database_suite!(
    refresh_rotates_and_a_reused_token_ends_the_session,
    concurrent_refreshes_of_one_token_succeed_once,
    signing_out_ends_one_session_and_is_idempotent,
    changing_ones_password_needs_the_current_one_and_ends_every_session,
    a_demoted_admin_is_refused_at_once,
    a_deleted_accounts_sessions_end,
    repeated_failures_lock_one_email_and_not_another,
    lockouts_double_end_and_reset_on_success,
    refresh_tokens_expire,
    wrong_credentials_take_as_long_for_unknown_and_known_accounts,
);
