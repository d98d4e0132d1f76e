//! Issuing and verifying tokens: roundtrips, every rejection reason, key rotation
//! and refreshing keys from a `KeySource`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use platform_auth::{
    Caller, Jwk, KeyError, KeySource, KeySourceError, Role, SigningKey, TokenIssuer, TokenSettings,
    Verifier, VerifyError,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://users.test";
const AUDIENCE: &str = "platform";

fn settings(ttl: Duration) -> TokenSettings {
    TokenSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ttl,
    }
}

fn issuer_with(key: &SigningKey) -> TokenIssuer {
    TokenIssuer::new(key.clone(), settings(Duration::from_secs(900)))
}

/// An access token for `subject` as `role`, signed with `key`.
fn token_of(key: &SigningKey, subject: &str, role: Role) -> String {
    issuer_with(key).issue(subject, role).unwrap().access_token
}

fn verifier_for(keys: &[&SigningKey]) -> Verifier {
    Verifier::new(
        keys.iter().map(|k| k.public_jwk()).collect(),
        ISSUER,
        AUDIENCE,
    )
    .unwrap()
}

/// `verifier` rejects `token`, for exactly the reason `why`.
async fn assert_rejects(verifier: &Verifier, token: &str, why: VerifyError) {
    assert_eq!(verifier.verify(token).await, Err(why), "{token}");
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn valid_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "role": "user",
        "iat": now, "nbf": now, "exp": now + 600, "jti": "j",
    })
}

/// Signs arbitrary claims with `key`, the way a buggy or hostile issuer might.
fn sign_raw(key: &SigningKey, kid: Option<&str>, claims: &Value) -> String {
    let der = ed25519_dalek::SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap())
        .unwrap()
        .to_pkcs8_der()
        .unwrap();
    let encoding_key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding_key).unwrap()
}

/// `claims` signed by `key`, under its own kid.
fn signed(key: &SigningKey, claims: &Value) -> String {
    sign_raw(key, Some(key.kid()), claims)
}

#[tokio::test]
async fn issue_then_verify_roundtrips_both_roles() {
    let key = SigningKey::generate().unwrap();
    let issuer = issuer_with(&key);
    let verifier = verifier_for(&[&key]);
    for role in [Role::User, Role::Admin] {
        let issued = issuer.issue("user-42", role).unwrap();
        assert_eq!(issued.expires_in, Duration::from_secs(900));
        let caller = verifier.verify(&issued.access_token).await.unwrap();
        assert_eq!(
            caller,
            Caller {
                subject: "user-42".into(),
                role
            }
        );
        assert_eq!(caller.is_admin(), role == Role::Admin);
    }
}

#[test]
fn issued_token_has_the_documented_header_and_claims() {
    let key = SigningKey::generate().unwrap();
    let token = token_of(&key, "user-7", Role::Admin);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);

    let header = decode_part(parts[0]);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], key.kid());

    let claims = decode_part(parts[1]);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "user-7");
    assert_eq!(claims["role"], "admin");
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!((iat - now()).abs() <= 5);
    assert_eq!(nbf, iat);
    assert_eq!(exp, iat + 900);
    let jti = uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();
    assert_eq!(jti.get_version_num(), 4);

    let other = issuer_with(&key).issue("user-7", Role::Admin).unwrap();
    assert_ne!(
        decode_part(other.access_token.split('.').nth(1).unwrap())["jti"],
        claims["jti"]
    );
}

#[tokio::test]
async fn zero_ttl_token_is_expired_without_leeway() {
    let key = SigningKey::generate().unwrap();
    let token = TokenIssuer::new(key.clone(), settings(Duration::ZERO))
        .issue("u", Role::User)
        .unwrap()
        .access_token;
    let strict = verifier_for(&[&key]).with_leeway(Duration::ZERO);
    assert_rejects(&strict, &token, VerifyError::Expired).await;
    // The default 30 s leeway for clock skew still accepts it.
    assert!(verifier_for(&[&key]).verify(&token).await.is_ok());
}

#[tokio::test]
async fn old_or_negative_exp_is_expired_and_leeway_is_30s() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    for exp in [now() - 3600, now() - 31, -1] {
        let mut claims = valid_claims();
        claims["exp"] = json!(exp);
        claims["iat"] = json!(exp - 600);
        claims["nbf"] = json!(exp - 600);
        let token = signed(&key, &claims);
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Expired),
            "exp {exp}"
        );
    }
    let mut within_leeway = valid_claims();
    within_leeway["exp"] = json!(now() - 10);
    let token = signed(&key, &within_leeway);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn future_nbf_is_not_yet_valid() {
    let key = SigningKey::generate().unwrap();
    let mut claims = valid_claims();
    claims["nbf"] = json!(now() + 3600);
    claims["exp"] = json!(now() + 7200);
    let token = signed(&key, &claims);
    assert_rejects(&verifier_for(&[&key]), &token, VerifyError::NotYetValid).await;
}

#[tokio::test]
async fn wrong_issuer_and_wrong_audience_are_rejected() {
    let key = SigningKey::generate().unwrap();
    let token = token_of(&key, "u", Role::User);

    let other_issuer =
        Verifier::new(vec![key.public_jwk()], "https://evil.test", AUDIENCE).unwrap();
    assert_rejects(&other_issuer, &token, VerifyError::WrongIssuer).await;

    let other_audience = Verifier::new(vec![key.public_jwk()], ISSUER, "billing").unwrap();
    assert_rejects(&other_audience, &token, VerifyError::WrongAudience).await;
}

#[tokio::test]
async fn audience_may_be_an_array() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    let mut claims = valid_claims();
    claims["aud"] = json!(["billing", AUDIENCE]);
    assert!(verifier.verify(&signed(&key, &claims)).await.is_ok());
    claims["aud"] = json!(["billing", "search"]);
    let token = signed(&key, &claims);
    assert_rejects(&verifier, &token, VerifyError::WrongAudience).await;
}

#[tokio::test]
async fn token_from_an_unknown_key_is_rejected() {
    let trusted = SigningKey::generate().unwrap();
    let stranger = SigningKey::generate().unwrap();
    let token = token_of(&stranger, "u", Role::Admin);
    assert_rejects(&verifier_for(&[&trusted]), &token, VerifyError::UnknownKey).await;
}

#[tokio::test]
async fn stranger_signature_under_a_trusted_kid_is_a_bad_signature() {
    let trusted = SigningKey::generate().unwrap();
    let stranger = SigningKey::generate().unwrap();
    let token = sign_raw(&stranger, Some(trusted.kid()), &valid_claims());
    assert_rejects(
        &verifier_for(&[&trusted]),
        &token,
        VerifyError::BadSignature,
    )
    .await;
}

#[tokio::test]
async fn tampered_payload_or_signature_is_a_bad_signature() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    let token = token_of(&key, "user-1", Role::User);
    let parts: Vec<&str> = token.split('.').collect();

    let mut claims = decode_part(parts[1]);
    claims["role"] = json!("admin");
    let escalated = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    assert_rejects(&verifier, &escalated, VerifyError::BadSignature).await;

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let forged = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_rejects(&verifier, &forged, VerifyError::BadSignature).await;
}

#[tokio::test]
async fn alg_none_and_hs256_are_unsupported() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    let claims = b64(&serde_json::to_vec(&valid_claims()).unwrap());

    for header in [
        json!({"alg": "none", "typ": "JWT", "kid": key.kid()}),
        json!({"alg": "none"}),
        json!({"alg": "NONE", "kid": key.kid()}),
    ] {
        let header = b64(&serde_json::to_vec(&header).unwrap());
        for signature in ["", "AAAA"] {
            let token = format!("{header}.{claims}.{signature}");
            assert_rejects(&verifier, &token, VerifyError::UnsupportedAlgorithm).await;
        }
    }

    // The classic confusion attack: HMAC keyed with the verifier's public key.
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    let public_key = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(key.kid().to_owned());
    let hs256 = jsonwebtoken::encode(
        &header,
        &valid_claims(),
        &jsonwebtoken::EncodingKey::from_secret(&public_key),
    )
    .unwrap();
    assert_rejects(&verifier, &hs256, VerifyError::UnsupportedAlgorithm).await;
}

#[tokio::test]
async fn garbage_is_malformed() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    let header_without_kid = b64(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let long = "a".repeat(20_000);
    let cases = [
        "".to_owned(),
        "garbage".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        "a.b.c.d".to_owned(),
        "....".to_owned(),
        "!!!.@@@.###".to_owned(),
        format!("{}.e30.", b64(b"not json")),
        format!("{header_without_kid}.e30.AAAA"),
        format!("{long}.{long}.{long}"),
    ];
    for token in &cases {
        assert_eq!(
            verifier.verify(token).await,
            Err(VerifyError::Malformed),
            "{token:.40}"
        );
    }
}

#[tokio::test]
async fn missing_or_unknown_claims_are_malformed() {
    let key = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&key]);
    for (claim, value) in [
        ("role", Value::Null),
        ("role", json!("root")),
        ("role", json!("Admin")),
        ("sub", Value::Null),
        ("sub", json!("")),
        ("exp", Value::Null),
        ("exp", json!("tomorrow")),
        ("iss", Value::Null),
        ("aud", Value::Null),
    ] {
        let mut claims = valid_claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(claim);
        } else {
            claims[claim] = value.clone();
        }
        let token = signed(&key, &claims);
        assert_eq!(
            verifier.verify(&token).await,
            Err(VerifyError::Malformed),
            "{claim} = {value}"
        );
    }
    // A signed token with no kid cannot be matched to a key.
    let token = sign_raw(&key, None, &valid_claims());
    assert_rejects(&verifier, &token, VerifyError::Malformed).await;
}

#[tokio::test]
async fn verifier_with_two_keys_accepts_tokens_from_both() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&old, &new]);
    for key in [&old, &new] {
        let token = token_of(key, "u", Role::User);
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "u");
    }
}

#[tokio::test]
async fn replace_keys_swaps_the_set_and_rejects_foreign_keys() {
    let old = SigningKey::generate().unwrap();
    let new = SigningKey::generate().unwrap();
    let verifier = verifier_for(&[&old]);
    let old_token = token_of(&old, "u", Role::User);
    let new_token = token_of(&new, "u", Role::User);

    verifier.replace_keys(vec![new.public_jwk()]).unwrap();
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_rejects(&verifier, &old_token, VerifyError::UnknownKey).await;

    let rsa = with_members(&old.public_jwk(), json!({"kty": "RSA", "crv": null}));
    let err = verifier
        .replace_keys(vec![old.public_jwk(), rsa])
        .unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedJwk { .. }), "{err}");
    // A rejected replacement leaves the previous set in place.
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_rejects(&verifier, &old_token, VerifyError::UnknownKey).await;
}

#[test]
fn new_rejects_non_ed25519_jwks() {
    let key = SigningKey::generate().unwrap();
    let p256 = with_members(
        &key.public_jwk(),
        json!({"kty": "EC", "crv": "P-256", "alg": "ES256"}),
    );
    let err = Verifier::new(vec![key.public_jwk(), p256], ISSUER, AUDIENCE).unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedJwk { .. }), "{err}");
}

#[tokio::test]
async fn error_messages_carry_no_token_content() {
    let key = SigningKey::generate().unwrap();
    let token = token_of(&key, "secret-subject", Role::User);
    let err = Verifier::new(vec![key.public_jwk()], "other", AUDIENCE)
        .unwrap()
        .verify(&token)
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert_eq!(err.to_string(), "invalid access token: wrong issuer");
    assert!(!shown.contains("secret-subject"));
    assert!(!shown.contains(&token[..20]));
}

/// A key source over a settable key set that counts its fetches.
struct CountingSource {
    keys: std::sync::Mutex<Vec<Jwk>>,
    fetches: AtomicUsize,
    fail: bool,
    delay: Duration,
}

impl CountingSource {
    fn new(keys: Vec<Jwk>) -> Arc<Self> {
        Arc::new(CountingSource {
            keys: std::sync::Mutex::new(keys),
            fetches: AtomicUsize::new(0),
            fail: false,
            delay: Duration::ZERO,
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl KeySource for CountingSource {
    async fn fetch(&self) -> Result<Vec<Jwk>, KeySourceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(KeySourceError("connection refused".into()));
        }
        Ok(self.keys.lock().unwrap().clone())
    }
}

fn sourced(source: Arc<CountingSource>, interval: Duration) -> Verifier {
    Verifier::with_source(source, interval, ISSUER, AUDIENCE)
}

#[tokio::test]
async fn unknown_kid_triggers_a_fetch_that_adds_the_key() {
    let key = SigningKey::generate().unwrap();
    let source = CountingSource::new(vec![key.public_jwk()]);
    let verifier = sourced(source.clone(), Duration::from_secs(60));
    assert_eq!(
        source.fetches(),
        0,
        "fetches lazily, on the first unknown kid"
    );

    let token = token_of(&key, "u", Role::User);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(source.fetches(), 1);
    // Known from now on: no more fetches.
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn rotated_key_is_picked_up_after_the_refresh_interval() {
    let first = SigningKey::generate().unwrap();
    let second = SigningKey::generate().unwrap();
    let source = CountingSource::new(vec![first.public_jwk()]);
    let verifier = sourced(source.clone(), Duration::ZERO);
    let first_token = token_of(&first, "u", Role::User);
    assert!(verifier.verify(&first_token).await.is_ok());

    *source.keys.lock().unwrap() = vec![second.public_jwk()];
    let second_token = token_of(&second, "u", Role::User);
    assert!(verifier.verify(&second_token).await.is_ok());
    assert_eq!(source.fetches(), 2);
    // The fetched set replaced the old one: the retired key is no longer trusted.
    assert_rejects(&verifier, &first_token, VerifyError::UnknownKey).await;
}

#[tokio::test]
async fn flood_of_forged_kids_causes_at_most_two_fetches() {
    let key = SigningKey::generate().unwrap();
    let attacker = SigningKey::generate().unwrap();
    let source = CountingSource::new(vec![key.public_jwk()]);
    let verifier = Arc::new(sourced(source.clone(), Duration::from_secs(60)));

    let forged: Vec<String> = (0..100)
        .map(|i| sign_raw(&attacker, Some(&format!("forged-{i}")), &valid_claims()))
        .collect();
    let results = futures_util::future::join_all(forged.iter().map(|t| verifier.verify(t))).await;
    assert!(results.iter().all(|r| *r == Err(VerifyError::UnknownKey)));
    for token in &forged {
        assert_rejects(&verifier, token, VerifyError::UnknownKey).await;
    }
    assert!(
        (1..=2).contains(&source.fetches()),
        "{} fetches",
        source.fetches()
    );

    // Genuine tokens keep working throughout.
    let token = token_of(&key, "u", Role::User);
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let key = SigningKey::generate().unwrap();
    let source = Arc::new(CountingSource {
        keys: std::sync::Mutex::new(vec![key.public_jwk()]),
        fetches: AtomicUsize::new(0),
        fail: false,
        delay: Duration::from_millis(50),
    });
    // A zero interval: only the sharing, not the rate limit, keeps this at one fetch.
    let verifier = Arc::new(sourced(source.clone(), Duration::ZERO));
    let token = token_of(&key, "u", Role::User);

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let verifier = verifier.clone();
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn failing_source_yields_keys_unavailable() {
    let key = SigningKey::generate().unwrap();
    let source = Arc::new(CountingSource {
        keys: std::sync::Mutex::new(vec![]),
        fetches: AtomicUsize::new(0),
        fail: true,
        delay: Duration::ZERO,
    });
    let verifier = sourced(source.clone(), Duration::from_secs(60));
    let token = token_of(&key, "u", Role::User);
    assert_rejects(&verifier, &token, VerifyError::KeysUnavailable).await;
    // Still rate limited after a failure, and still reported as unavailable.
    assert_rejects(&verifier, &token, VerifyError::KeysUnavailable).await;
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn fetched_sets_skip_unsupported_keys() {
    let key = SigningKey::generate().unwrap();
    let rsa = with_members(&key.public_jwk(), json!({"kty": "RSA", "kid": "rsa-1"}));
    let source = CountingSource::new(vec![rsa, key.public_jwk()]);
    let verifier = sourced(source, Duration::from_secs(60));
    let token = token_of(&key, "u", Role::User);
    assert!(verifier.verify(&token).await.is_ok());
}

#[test]
fn verifier_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<TokenIssuer>();
}

/// `jwk` with some members replaced (`null` removes one), as a peer could publish it.
fn with_members(jwk: &Jwk, members: serde_json::Value) -> Jwk {
    let mut json = serde_json::to_value(jwk).unwrap();
    let object = json.as_object_mut().unwrap();
    for (name, value) in members.as_object().unwrap() {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    serde_json::from_value(json).unwrap()
}
