//! The verified-token cache: a hit answers like a full verification would, and never
//! outlives the token's expiry or its key.

use std::sync::Arc;
use std::time::Duration;

use platform_auth::{
    ManualClock, Role, SigningKey, TokenIssuer, TokenSettings, Verifier, VerifyError,
};

fn issuer(key: &SigningKey, ttl: Duration) -> TokenIssuer {
    TokenIssuer::new(
        key.clone(),
        TokenSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            ttl,
        },
    )
}

/// An access token for `subject` as `role`, signed with `key`, living `ttl`.
fn token_of(key: &SigningKey, ttl: Duration, subject: &str, role: Role) -> String {
    issuer(key, ttl).issue(subject, role).unwrap().access_token
}

fn verifier(keys: &[&SigningKey]) -> Verifier {
    Verifier::new(keys.iter().map(|k| k.public_jwk()).collect(), "iss", "aud")
        .unwrap()
        .with_leeway(Duration::ZERO)
        .with_cache(100)
}

#[tokio::test]
async fn a_cached_token_answers_the_same_caller() {
    let key = SigningKey::generate().unwrap();
    let token = token_of(&key, Duration::from_secs(900), "ada", Role::Admin);
    let verifier = verifier(&[&key]);
    let first = verifier.verify(&token).await.unwrap();
    let second = verifier.verify(&token).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(second.subject, "ada");
    assert_eq!(second.role, Role::Admin);
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let key = SigningKey::generate().unwrap();
    let clock = ManualClock::now();
    let token = issuer(&key, Duration::from_secs(2))
        .with_clock(Arc::new(clock.clone()))
        .issue("ada", Role::User)
        .unwrap()
        .access_token;
    let verifier = verifier(&[&key]).with_clock(Arc::new(clock.clone()));
    verifier.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    verifier.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Expired));
}

#[tokio::test]
async fn a_cached_token_dies_with_its_key() {
    let (old, new) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let token = token_of(&old, Duration::from_secs(900), "ada", Role::User);
    let verifier = verifier(&[&old, &new]);
    verifier.verify(&token).await.unwrap();
    verifier.replace_keys(vec![new.public_jwk()]).unwrap();
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKey));
}

#[tokio::test]
async fn bad_tokens_are_never_cached() {
    let key = SigningKey::generate().unwrap();
    let token = token_of(&key, Duration::from_secs(900), "ada", Role::User);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let verifier = verifier(&[&key]);
    assert!(verifier.verify(&tampered).await.is_err());
    assert!(
        verifier.verify(&tampered).await.is_err(),
        "a failure is not remembered as a success"
    );
    verifier.verify(&token).await.unwrap();
}
