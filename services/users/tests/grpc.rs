//! The users contract over gRPC, against the real service on port 0, on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, TestApp, authed};
use platform_auth::{SigningKey, TokenIssuer, TokenSettings, Verifier};
use platform_proto::users::v1 as pb;
use platform_testing::TestDatabase;
use tonic::Code;
use tonic_types::StatusExt;

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

async fn sign_up_then_read_self(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, token) = app.user("Ada@Example.com").await;
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.role, pb::Role::User as i32);
    assert!(user.create_time.is_some() && user.update_time.is_some());
    uuid::Uuid::parse_str(&user.id).expect("id is a UUID");

    let read = app
        .client
        .clone()
        .get_user(authed(
            pb::GetUserRequest {
                id: user.id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, user);
    app.stop().await;
}

async fn invalid_sign_up_lists_every_field_violation(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let status = app
        .client
        .clone()
        .create_user(pb::CreateUserRequest {
            email: "not-an-email".into(),
            display_name: "   ".into(),
            password: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["email", "display_name", "password"]);

    let overlong = app
        .client
        .clone()
        .create_user(pb::CreateUserRequest {
            email: "ok@example.com".into(),
            display_name: "x".repeat(101),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(overlong.code(), Code::InvalidArgument);
    assert_eq!(violations(&overlong)[0].0, "display_name");
    app.stop().await;
}

async fn duplicate_email_is_already_exists(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.sign_up("ada@example.com").await;
    let status = app
        .client
        .clone()
        .create_user(pb::CreateUserRequest {
            email: "ADA@example.COM".into(),
            display_name: "Another".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    app.stop().await;
}

async fn wrong_password_and_unknown_email_look_the_same(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    app.sign_up("ada@example.com").await;
    let wrong = app
        .token("ada@example.com", "not the password")
        .await
        .unwrap_err();
    let unknown = app.token("nobody@example.com", PASSWORD).await.unwrap_err();
    let malformed = app.token("nobody", PASSWORD).await.unwrap_err();
    for status in [&wrong, &unknown, &malformed] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status.message(), wrong.message());
    }
    app.stop().await;
}

async fn token_carries_subject_role_and_expiry(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let response = app
        .client
        .clone()
        .create_token(pb::CreateTokenRequest {
            email: "ada@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 900);

    // Anyone holding the published key set can verify the token.
    let jwks = app
        .client
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(jwks.len(), 1);
    assert_eq!(
        (
            jwks[0].kty.as_str(),
            jwks[0].crv.as_str(),
            jwks[0].alg.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA")
    );
    let keys = jwks
        .into_iter()
        .map(|k| platform_auth::jwk_from_proto(k).unwrap())
        .collect();
    let verifier = Verifier::new(keys, "platform-users", "platform").unwrap();
    let caller = verifier.verify(&response.access_token).await.unwrap();
    assert_eq!(caller.subject, user.id);
    assert_eq!(caller.role, platform_auth::Role::User);
    app.stop().await;
}

async fn protected_calls_need_a_valid_token(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (user, _) = app.user("ada@example.com").await;
    let get = |token: Option<String>| {
        let mut client = app.client.clone();
        let id = user.id.clone();
        async move {
            let request = match token {
                Some(t) => authed(pb::GetUserRequest { id }, &t),
                None => tonic::Request::new(pb::GetUserRequest { id }),
            };
            client.get_user(request).await.unwrap_err()
        }
    };
    assert_eq!(get(None).await.code(), Code::Unauthenticated);
    assert_eq!(
        get(Some("garbage".into())).await.code(),
        Code::Unauthenticated
    );

    // Well-formed and correctly signed, but by a key this service does not know.
    let stranger = TokenIssuer::new(
        SigningKey::generate().unwrap(),
        TokenSettings {
            issuer: "platform-users".into(),
            audience: "platform".into(),
            ttl: Duration::from_secs(900),
        },
    );
    let forged = stranger
        .issue(&user.id, platform_auth::Role::Admin)
        .unwrap()
        .access_token;
    let status = get(Some(forged)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("unknown signing key"),
        "{}",
        status.message()
    );
    app.stop().await;
}

async fn expired_tokens_are_rejected(db: TestDatabase) {
    let app = TestApp::spawn_with(db, |s| {
        s.auth.token_ttl_secs = 3;
        s.auth.verification.clock_skew_secs = 0;
    })
    .await;
    let (user, token) = app.user("ada@example.com").await;
    let ok = app
        .client
        .clone()
        .get_user(authed(
            pb::GetUserRequest {
                id: user.id.clone(),
            },
            &token,
        ))
        .await;
    assert!(ok.is_ok(), "fresh token works: {ok:?}");
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let status = app
        .client
        .clone()
        .get_user(authed(pb::GetUserRequest { id: user.id }, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
    app.stop().await;
}

async fn other_accounts_are_not_found_unless_admin(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, ada_token) = app.user("ada@example.com").await;
    let (bob, _) = app.user("bob@example.com").await;
    let mut client = app.client.clone();

    let status = client
        .get_user(authed(
            pb::GetUserRequest { id: bob.id.clone() },
            &ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    // Indistinguishable from an id that does not exist.
    let missing = client
        .get_user(authed(
            pb::GetUserRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
            &ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), missing.message()),
        (status.code(), status.message())
    );

    let update = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: bob.id.clone(),
                display_name: Some("Hacked".into()),
                ..Default::default()
            },
            &ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(update.code(), Code::NotFound);
    let delete = client
        .delete_user(authed(
            pb::DeleteUserRequest { id: bob.id.clone() },
            &ada_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(delete.code(), Code::NotFound);

    let (_, admin_token) = app.admin("root@example.com").await;
    let seen = client
        .get_user(authed(
            pb::GetUserRequest { id: bob.id.clone() },
            &admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.id, bob.id);
    assert_ne!(seen.id, ada.id);
    app.stop().await;
}

async fn bad_ids_are_invalid_arguments(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, token) = app.user("ada@example.com").await;
    let status = app
        .client
        .clone()
        .get_user(authed(pb::GetUserRequest { id: "42".into() }, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [("id".to_owned(), "must be a UUID".to_owned())]
    );
    app.stop().await;
}

async fn listing_is_for_admins_and_pages_by_token(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (_, user_token) = app.user("ada@example.com").await;
    let mut client = app.client.clone();
    let denied = client
        .list_users(authed(pb::ListUsersRequest::default(), &user_token))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    for i in 0..6 {
        app.sign_up(&format!("u{i}@example.com")).await;
    }
    let (_, admin_token) = app.admin("root@example.com").await;
    let mut ids = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_users(authed(
                pb::ListUsersRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                },
                &admin_token,
            ))
            .await
            .unwrap()
            .into_inner();
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

    let bad = client
        .list_users(authed(
            pb::ListUsersRequest {
                page_size: 3,
                page_token: "not-a-token".into(),
            },
            &admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn users_update_themselves_but_not_their_role(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.user("ada@example.com").await;
    let mut client = app.client.clone();

    let renamed = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                display_name: Some("Countess".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.display_name, "Countess");
    assert_eq!(renamed.email, ada.email);

    let escalate = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                role: Some(pb::Role::Admin as i32),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(escalate.code(), Code::PermissionDenied);

    let invalid = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                password: Some("short".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(violations(&invalid)[0].0, "password");

    client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                password: Some("a whole new passphrase".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    assert_eq!(
        app.token("ada@example.com", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    app.token("ada@example.com", "a whole new passphrase")
        .await
        .unwrap();

    let (_, admin_token) = app.admin("root@example.com").await;
    let promoted = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id.clone(),
                role: Some(pb::Role::Admin as i32),
                ..Default::default()
            },
            &admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.role, pb::Role::Admin as i32);
    let unspecified = client
        .update_user(authed(
            pb::UpdateUserRequest {
                id: ada.id,
                role: Some(pb::Role::Unspecified as i32),
                ..Default::default()
            },
            &admin_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(unspecified.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn deleted_accounts_are_gone(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.user("ada@example.com").await;
    let mut client = app.client.clone();
    client
        .delete_user(authed(pb::DeleteUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap();
    let status = client
        .get_user(authed(pb::GetUserRequest { id: ada.id.clone() }, &token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        app.token("ada@example.com", PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    let (bob, _) = app.user("bob@example.com").await;
    let (_, admin_token) = app.admin("root@example.com").await;
    client
        .delete_user(authed(pb::DeleteUserRequest { id: bob.id }, &admin_token))
        .await
        .unwrap();
    app.stop().await;
}

async fn tokens_survive_a_restart_and_a_key_rotation(db: TestDatabase) {
    let app = TestApp::spawn(db).await;
    let (ada, token) = app.user("ada@example.com").await;
    let (db, dir, mut settings) = app.stop().await;

    // Same key file: the generated key was kept.
    let app = TestApp::start(db, dir, settings.clone()).await;
    let get = |app: &TestApp| {
        let mut client = app.client.clone();
        let request = authed(pb::GetUserRequest { id: ada.id.clone() }, &token);
        async move { client.get_user(request).await }
    };
    get(&app).await.expect("token valid after restart");
    let (db, dir, _) = app.stop().await;

    // Rotation: a new signing key, the old one retired but still accepted.
    let old_key = settings.auth.signing_key_file.clone();
    settings.auth.signing_key_file = dir.path().join("new-key.pem");
    settings.auth.retired_key_files = vec![old_key];
    let app = TestApp::start(db, dir, settings).await;
    get(&app).await.expect("old token valid during rotation");
    let jwks = app
        .client
        .clone()
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(jwks.len(), 2, "new and retired key published");
    let new_token = app.token("ada@example.com", PASSWORD).await.unwrap();
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
