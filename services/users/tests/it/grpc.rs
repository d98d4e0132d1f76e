//! The users contract over gRPC, against the real service on port 0, on SQLite and on
//! PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use platform_auth::users_jwks::UsersJwks;
use platform_auth::{
    Clock, ManualClock, Role, SigningKey, SystemClock, TokenIssuer, TokenSettings, Verifier,
};
use platform_proto::users::v1 as pb;
use platform_testing::{PASSWORD, TestDatabase, refused};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::TestApp;

fn violations(status: &tonic::Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|br| {
            br.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// An `UpdateUser` of `id` that changes only what `change` sets.
fn update(id: &str, change: impl FnOnce(&mut pb::UpdateUserRequest)) -> pb::UpdateUserRequest {
    let mut request = pb::UpdateUserRequest {
        id: id.to_owned(),
        ..Default::default()
    };
    change(&mut request);
    request
}

async fn sign_up_then_read_self(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, token) = app.api.user("Ada@Example.com").await;
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.role, pb::Role::User as i32);
    assert!(user.create_time.is_some() && user.update_time.is_some());
    uuid::Uuid::parse_str(&user.id).expect("id is a UUID");

    let read = app.api.get_user(&user.id, &token).await.unwrap();
    assert_eq!(read, user);
    app.stop().await;
}

async fn invalid_sign_up_lists_every_field_violation(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let status = refused(app.api.create_user("not-an-email", "   ", "short")).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["email", "display_name", "password"]);

    let overlong = refused(
        app.api
            .create_user("ok@example.com", &"x".repeat(101), PASSWORD),
    )
    .await;
    assert_eq!(overlong.code(), Code::InvalidArgument);
    assert_eq!(violations(&overlong)[0].0, "display_name");

    for guessable in ["password", "12345678", "ok@example.com"] {
        let weak = refused(app.api.create_user("ok@example.com", "Ok", guessable)).await;
        assert_eq!(weak.code(), Code::InvalidArgument, "{guessable}");
        let (field, why) = violations(&weak).remove(0);
        assert_eq!(field, "password");
        assert!(
            why.starts_with("is too easy to guess: "),
            "{guessable}: {why}"
        );
    }
    app.stop().await;
}

async fn duplicate_email_is_already_exists(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    // One address, whatever its case.
    app.api.sign_up("ada@example.com").await;
    let status = refused(app.api.create_user("ADA@example.COM", "Another", PASSWORD)).await;
    assert_eq!(status.code(), Code::AlreadyExists);
    app.api.sign_in("Ada@Example.com", PASSWORD).await.unwrap();
    // An address as HTML forms take them, so ASCII: the `email` rule of the proto.
    let status = app
        .api
        .create_user("ren\u{e9}@example.com", "Ren\u{e9}e", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [(
            "email".to_owned(),
            "must be a valid email address".to_owned()
        )]
    );
    app.stop().await;
}

async fn wrong_password_and_unknown_email_look_the_same(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.api.sign_up("ada@example.com").await;
    let wrong = refused(app.api.sign_in("ada@example.com", "not the password")).await;
    let unknown = refused(app.api.sign_in("nobody@example.com", PASSWORD)).await;
    let malformed = refused(app.api.sign_in("nobody", PASSWORD)).await;
    // Longer than any password can be: refused like a wrong one, never hashed.
    let huge = "x".repeat(900 * 1024);
    let oversized = refused(app.api.sign_in("ada@example.com", &huge)).await;
    for status in [&wrong, &unknown, &malformed, &oversized] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), wrong.message());
    }
    app.stop().await;
}

async fn token_carries_subject_role_and_expiry(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, _) = app.api.user("ada@example.com").await;
    let response = app.session("ada@example.com").await;
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 300, "five minutes by default");
    assert_eq!(response.refresh_expires_in, 30 * 24 * 60 * 60);
    assert_eq!(response.refresh_token.len(), 43, "256 bits in base64url");

    let jwks = app.api.get_jwks().await;
    assert_eq!(jwks.len(), 1);
    assert_eq!(
        (
            jwks[0].kty.as_str(),
            jwks[0].crv.as_str(),
            jwks[0].alg.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA")
    );
    // Anyone holding the published key set can verify the token: here, a verifier
    // that fetches it the way the other services do.
    let url = format!("http://{}", app.grpc_addr);
    let channel = platform_testing::connect(app.grpc_addr).await;
    let client = platform_client::Client::new(channel, &url, Duration::from_secs(5));
    let source = Arc::new(UsersJwks::new(client, Duration::from_secs(5)));
    let verifier = Verifier::with_source(source, Duration::ZERO, "platform-users", "platform");
    let caller = verifier.verify(&response.access_token).await.unwrap();
    assert_eq!(caller.subject, user.id);
    assert_eq!(caller.role, Role::User);
    app.stop().await;
}

async fn protected_calls_need_a_valid_token(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, _) = app.api.user("ada@example.com").await;
    let anonymous = app
        .api
        .client()
        .get_user(pb::GetUserRequest {
            id: user.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let garbage = refused(app.api.get_user(&user.id, "garbage")).await;
    assert_eq!(garbage.code(), Code::Unauthenticated);

    // Well-formed and correctly signed, but by a key this service does not know.
    let stranger = TokenIssuer::new(
        SigningKey::generate().unwrap(),
        TokenSettings {
            issuer: "platform-users".into(),
            audience: "platform".into(),
            ttl: Duration::from_secs(900),
        },
    );
    let forged = stranger.issue(&user.id, Role::Admin).unwrap().access_token;
    let status = refused(app.api.get_user(&user.id, &forged)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("unknown signing key"),
        "{}",
        status.message()
    );
    app.stop().await;
}

async fn expired_tokens_are_rejected(db: TestDatabase) {
    let app = TestApp::spawn_with(db, |s| s.auth.verification.clock_skew_secs = 0).await;
    let (user, token) = app.api.user("ada@example.com").await;
    let ok = app.api.get_user(&user.id, &token).await;
    assert!(ok.is_ok(), "fresh token works: {ok:?}");

    // The service's own key and claims, issued now and one lifetime and a second ago:
    // only the age differs, and no test waits for a token to age.
    let now = ManualClock::now();
    let ttl = i64::try_from(app.settings.auth.token_ttl_secs).unwrap();
    let then = ManualClock::at(SystemClock.unix_now() - ttl - 1);
    let fresh = app
        .issuer(Arc::new(now))
        .issue(&user.id, Role::User)
        .unwrap();
    let expired = app
        .issuer(Arc::new(then))
        .issue(&user.id, Role::User)
        .unwrap();
    let ok = app.api.get_user(&user.id, &fresh.access_token).await;
    assert!(ok.is_ok(), "a token issued now works: {ok:?}");
    let status = refused(app.api.get_user(&user.id, &expired.access_token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
    app.stop().await;
}

async fn other_accounts_are_not_found_unless_admin(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, ada_token) = app.api.user("ada@example.com").await;
    let (bob, _) = app.api.user("bob@example.com").await;

    let status = refused(app.api.get_user(&bob.id, &ada_token)).await;
    assert_eq!(status.code(), Code::NotFound);
    // Indistinguishable from an id that does not exist.
    let nobody = uuid::Uuid::now_v7().to_string();
    let missing = refused(app.api.get_user(&nobody, &ada_token)).await;
    assert_eq!(
        (missing.code(), missing.message()),
        (status.code(), status.message())
    );

    let rename = update(&bob.id, |u| u.display_name = Some("Hacked".into()));
    let renamed = refused(app.api.update_user(rename, &ada_token)).await;
    assert_eq!(renamed.code(), Code::NotFound);
    let delete = refused(app.api.delete_user(&bob.id, &ada_token)).await;
    assert_eq!(delete.code(), Code::NotFound);

    let (_, admin_token) = app.admin("root@example.com").await;
    let seen = app.api.get_user(&bob.id, &admin_token).await.unwrap();
    assert_eq!(seen.id, bob.id);
    assert_ne!(seen.id, ada.id);
    app.stop().await;
}

async fn bad_ids_are_invalid_arguments(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, token) = app.api.user("ada@example.com").await;
    let status = refused(app.api.get_user("42", &token)).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [("id".to_owned(), "must be a valid UUID".to_owned())]
    );
    app.stop().await;
}

async fn listing_is_for_admins_and_pages_by_token(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, user_token) = app.api.user("ada@example.com").await;
    let denied = refused(app.api.list_users(0, "", &user_token)).await;
    assert_eq!(denied.code(), Code::PermissionDenied);

    for i in 0..6 {
        app.api.sign_up(&format!("u{i}@example.com")).await;
    }
    let (_, admin_token) = app.admin("root@example.com").await;
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .api
            .list_users(3, &page_token, &admin_token)
            .await
            .unwrap();
        pages += 1;
        assert!(page.users.len() <= 3);
        ids.extend(page.users.into_iter().map(|u| u.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(ids.len(), 8, "ada, six users, the admin");
    assert_eq!(pages, 3);
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");

    let bad = refused(app.api.list_users(3, "not-a-token", &admin_token)).await;
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn users_update_themselves_but_not_their_role(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.api.user("ada@example.com").await;

    let rename = update(&ada.id, |u| u.display_name = Some("Countess".into()));
    let renamed = app.api.update_user(rename, &token).await.unwrap();
    assert_eq!(renamed.display_name, "Countess");
    assert_eq!(renamed.email, ada.email);

    let to_admin = |id: &str| update(id, |u| u.role = Some(pb::Role::Admin as i32));
    let escalate = refused(app.api.update_user(to_admin(&ada.id), &token)).await;
    assert_eq!(escalate.code(), Code::PermissionDenied);

    let short = update(&ada.id, |u| u.password = Some("short".into()));
    let invalid = refused(app.api.update_user(short, &token)).await;
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violations(&invalid)[0].0, "password");

    let new_password = update(&ada.id, |u| {
        u.password = Some("a whole new passphrase".into());
        u.current_password = Some(PASSWORD.into());
    });
    app.api.update_user(new_password, &token).await.unwrap();
    let old_password = app.api.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(old_password.unwrap_err().code(), Code::Unauthenticated);
    app.api
        .sign_in("ada@example.com", "a whole new passphrase")
        .await
        .unwrap();

    let (_, admin_token) = app.admin("root@example.com").await;
    let promoted = app
        .api
        .update_user(to_admin(&ada.id), &admin_token)
        .await
        .unwrap();
    assert_eq!(promoted.role, pb::Role::Admin as i32);
    let no_role = update(&ada.id, |u| u.role = Some(pb::Role::Unspecified as i32));
    let unspecified = refused(app.api.update_user(no_role, &admin_token)).await;
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn deleted_accounts_are_gone(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.api.user("ada@example.com").await;
    app.api.delete_user(&ada.id, &token).await.unwrap();
    // The access token is still signed and unexpired, but its account is gone.
    let status = refused(app.api.get_user(&ada.id, &token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("no longer exists"), "{status:?}");
    let signed_in = app.api.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(signed_in.unwrap_err().code(), Code::Unauthenticated);

    let (bob, _) = app.api.user("bob@example.com").await;
    let (_, admin_token) = app.admin("root@example.com").await;
    app.api.delete_user(&bob.id, &admin_token).await.unwrap();
    app.stop().await;
}

async fn tokens_survive_a_restart_and_a_key_rotation(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.api.user("ada@example.com").await;
    let (db, dir, mut settings) = app.stop().await;

    // Same key file: the generated key was kept.
    let app = TestApp::start(db, dir, settings.clone()).await;
    app.api
        .get_user(&ada.id, &token)
        .await
        .expect("token valid after restart");
    let (db, dir, _) = app.stop().await;

    // Rotation: a new signing key, the old one retired but still accepted.
    let old_key = settings.auth.signing_key_file.clone();
    settings.auth.signing_key_file = dir.path().join("new-key.pem");
    settings.auth.retired_key_files = vec![old_key];
    let app = TestApp::start(db, dir, settings).await;
    app.api
        .get_user(&ada.id, &token)
        .await
        .expect("old token valid during rotation");
    let jwks = app.api.get_jwks().await;
    assert_eq!(jwks.len(), 2, "new and retired key published");
    let new_token = app.api.sign_in("ada@example.com", PASSWORD).await.unwrap();
    let header = new_token.split('.').next().unwrap();
    let header = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert!(
        header.contains(&jwks[0].kid),
        "new tokens are signed by the new key"
    );
    app.stop().await;
}

platform_testing::database_suite!(
    sign_up_then_read_self,
    invalid_sign_up_lists_every_field_violation,
    duplicate_email_is_already_exists,
    wrong_password_and_unknown_email_look_the_same,
    token_carries_subject_role_and_expiry,
    protected_calls_need_a_valid_token,
    expired_tokens_are_rejected,
    other_accounts_are_not_found_unless_admin,
    bad_ids_are_invalid_arguments,
    listing_is_for_admins_and_pages_by_token,
    users_update_themselves_but_not_their_role,
    deleted_accounts_are_gone,
    tokens_survive_a_restart_and_a_key_rotation,
);
