//! Key files and redaction: loading, generating and storing signing keys, and
//! keeping key and token material out of errors and Debug output.

use std::time::Duration;

use platform_auth::{BearerToken, KeyError, Role, SigningKey, TokenIssuer, TokenSettings};

#[test]
fn load_or_generate_writes_then_loads_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/signing-key.pem");

    let first = SigningKey::load_or_generate(&path).unwrap();
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    let second = SigningKey::load_or_generate(&path).unwrap();
    assert_eq!(second.kid(), first.kid());
    assert_eq!(SigningKey::load(&path).unwrap().kid(), first.kid());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        pem,
        "file left untouched"
    );

    // Only the key file is left behind, no temporary files.
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn garbage_key_file_error_names_the_path_not_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let content =
        "-----BEGIN PRIVATE KEY-----\nc3VwZXJzZWNyZXRwYXNzd29yZA==\n-----END PRIVATE KEY-----\n";
    std::fs::write(&path, content).unwrap();

    for result in [SigningKey::load(&path), SigningKey::load_or_generate(&path)] {
        let err = result.unwrap_err();
        assert!(matches!(err, KeyError::InvalidKeyFile { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(!shown.contains("c3VwZXJzZWNyZXRwYXNzd29yZA"), "{shown}");
    }
    // A broken key is an error, never silently replaced.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

#[test]
fn missing_key_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.pem");
    let err = SigningKey::load(&path).unwrap_err();
    assert!(matches!(err, KeyError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn invalid_pem_string_is_rejected() {
    assert!(matches!(
        SigningKey::from_pkcs8_pem("not a key"),
        Err(KeyError::InvalidPem)
    ));
}

#[test]
fn debug_output_holds_no_key_or_token_material() {
    let key = SigningKey::generate().unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();

    let key_debug = format!("{key:?}");
    assert!(key_debug.contains("<redacted>"), "{key_debug}");
    assert!(!key_debug.contains(&pem_body), "{key_debug}");

    let issuer = TokenIssuer::new(
        key,
        TokenSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            ttl: Duration::from_secs(60),
        },
    );
    assert!(!format!("{issuer:?}").contains(&pem_body));

    let issued = issuer.issue("u", Role::User).unwrap();
    let token = issued.access_token.clone();
    let issued_debug = format!("{issued:?}");
    assert!(!issued_debug.contains(&token), "{issued_debug}");
    assert!(!issued_debug.contains(token.split('.').next().unwrap()));
    assert!(issued_debug.contains("<redacted>"));

    assert_eq!(
        format!("{:?}", BearerToken(token)),
        "BearerToken(<redacted>)"
    );
}
