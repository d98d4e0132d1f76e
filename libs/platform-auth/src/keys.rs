//! Ed25519 key material: the private signing key the `users` service holds, its
//! PKCS#8 PEM file form, and the public JWK form every service verifies against.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
pub use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{DecodingKey, EncodingKey};
use platform_proto::users::v1 as pb;

/// JWS `alg` of an Ed25519 signature (RFC 8037).
pub(crate) const ALG_EDDSA: &str = "EdDSA";

/// Failures to load, store, parse or use key material.
///
/// Messages name files and key ids but never contain key bytes or file content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file (or creating its directory) failed.
    #[error("cannot {action} key file {}: {error}", path.display())]
    Io {
        /// What was being done: "read", "write", "create the directory of", ...
        action: &'static str,
        /// The key file concerned.
        path: PathBuf,
        /// The underlying failure.
        error: io::Error,
    },
    /// A key file exists but does not hold a PKCS#8 PEM Ed25519 private key.
    #[error("key file {} does not hold a PKCS#8 PEM Ed25519 private key", path.display())]
    InvalidKeyFile {
        /// The key file concerned.
        path: PathBuf,
    },
    /// A PEM string is not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 PEM Ed25519 private key")]
    InvalidPem,
    /// The private key could not be encoded as PKCS#8.
    #[error("cannot encode the private key as PKCS#8")]
    Encode,
    /// The operating system's random source failed while generating a key.
    #[error("cannot generate a key: the OS random source failed: {0}")]
    Random(getrandom::Error),
    /// A JWK is not an Ed25519 signature key this crate can verify with.
    #[error("unsupported JWK (kid {kid:?}): {reason}")]
    UnsupportedJwk {
        /// The `kid` of the rejected key.
        kid: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Signing a token failed.
    #[error("cannot sign the token: {0}")]
    Signing(jsonwebtoken::errors::Error),
    /// The RFC 7638 thumbprint of a key could not be computed.
    #[error("cannot compute the key's thumbprint: {0}")]
    Thumbprint(jsonwebtoken::errors::Error),
}

fn io_error(action: &'static str, path: &Path, error: io::Error) -> KeyError {
    KeyError::Io {
        action,
        path: path.to_owned(),
        error,
    }
}

/// The JWK (RFC 7517 / RFC 8037) of an Ed25519 public key: `kty` OKP, `crv` Ed25519,
/// `alg` EdDSA, `use` sig, and its RFC 7638 thumbprint as `kid`.
fn ed25519_jwk(key: &ed25519_dalek::VerifyingKey) -> Result<Jwk, KeyError> {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }),
    };
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(KeyError::Thumbprint)?;
    jwk.common.key_id = Some(kid);
    Ok(jwk)
}

/// Checks that `jwk` is an Ed25519 signature key with a key id, and returns the id and
/// the key to verify with.
pub(crate) fn decoding_key(jwk: &Jwk) -> Result<(String, DecodingKey), KeyError> {
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    let reject = |reason| KeyError::UnsupportedJwk {
        kid: kid.clone(),
        reason,
    };
    let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
        return Err(reject("not an Ed25519 (OKP) key"));
    };
    if params.curve != EllipticCurve::Ed25519 {
        return Err(reject("not an Ed25519 (OKP) key"));
    }
    if jwk.common.key_algorithm != Some(KeyAlgorithm::EdDSA) {
        return Err(reject("alg is not EdDSA"));
    }
    if jwk.common.public_key_use != Some(PublicKeyUse::Signature) {
        return Err(reject("use is not sig"));
    }
    if kid.is_empty() {
        return Err(reject("empty kid"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(&params.x)
        .map_err(|_| reject("x is not base64url"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| reject("x is not 32 bytes"))?;
    // jsonwebtoken only checks the point when a token arrives; checking here turns
    // a bad key into an error at load time instead of a failure on every request.
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| reject("x is not a valid Ed25519 public key"))?;
    Ok((kid, DecodingKey::from_ed_der(&bytes)))
}

/// The `users.v1.Jwk` message of `jwk`: its members by their JSON names.
pub fn jwk_to_proto(jwk: &Jwk) -> pb::Jwk {
    let json = serde_json::to_value(jwk).unwrap_or_default();
    let member = |name: &str| json[name].as_str().unwrap_or_default().to_owned();
    pb::Jwk {
        kty: member("kty"),
        crv: member("crv"),
        x: member("x"),
        kid: member("kid"),
        alg: member("alg"),
        r#use: member("use"),
    }
}

/// The JWK a `users.v1.Jwk` message describes (empty members are absent). Whether it
/// is a key the platform can verify with is checked when it is used.
pub fn jwk_from_proto(key: pb::Jwk) -> Result<Jwk, KeyError> {
    let members = [
        ("kty", key.kty),
        ("crv", key.crv),
        ("x", key.x),
        ("kid", key.kid.clone()),
        ("alg", key.alg),
        ("use", key.r#use),
    ];
    let object: serde_json::Map<String, serde_json::Value> = members
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value)))
        .collect();
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|_| {
        KeyError::UnsupportedJwk {
            kid: key.kid,
            reason: "not a JWK",
        }
    })
}

/// An Ed25519 private key used to sign access tokens, with its key id.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
    /// The public half as published, computed once.
    public: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    fn from_dalek(key: ed25519_dalek::SigningKey) -> Result<Self, KeyError> {
        let public = ed25519_jwk(&key.verifying_key())?;
        let kid = public.common.key_id.clone().unwrap_or_default();
        Ok(SigningKey { key, kid, public })
    }

    /// Generates a new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
        getrandom::fill(&mut seed).map_err(KeyError::Random)?;
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 private key, as
    /// written by [`SigningKey::to_pkcs8_pem`] or `openssl genpkey -algorithm ed25519`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        // The parser's error can quote bytes of its input, so it is dropped.
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::InvalidPem)?;
        Self::from_dalek(key)
    }

    /// Encodes the private key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Encode)?;
        Ok(pem.as_str().to_owned())
    }

    /// Loads a PKCS#8 PEM key file. Blocking: meant for start-up.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let pem = fs::read_to_string(path).map_err(|e| io_error("read", path, e))?;
        Self::parse_file(path, &pem)
    }

    fn parse_file(path: &Path, pem: &str) -> Result<Self, KeyError> {
        let key = Self::from_pkcs8_pem(pem).map_err(|_| KeyError::InvalidKeyFile {
            path: path.to_owned(),
        })?;
        warn_if_readable_by_others(path);
        Ok(key)
    }

    /// Loads the key at `path`, or generates one and writes it there (creating parent
    /// directories, file mode 0600 on unix) when the file does not exist.
    ///
    /// Blocking: meant for start-up. When two processes race to create the file, both
    /// end up with the key that landed first.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        match fs::read_to_string(path) {
            Ok(pem) => return Self::parse_file(path, &pem),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("read", path, e)),
        }

        let key = Self::generate()?;
        let pem = key.to_pkcs8_pem()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| io_error("create the directory of", path, e))?;
        }

        // Written under a temporary name and hard-linked into place: a crash never
        // leaves a half-written key at `path`, and the link fails rather than replace
        // a key another process has just written.
        let tmp = temporary_sibling(path)?;
        if let Err(e) = write_private_file(&tmp, &pem) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error("write", path, e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), kid = %key.kid, "generated a new token signing key");
                Ok(key)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_error("write", path, e)),
        }
    }

    /// The key id: the RFC 7638 thumbprint (SHA-256, base64url without padding) of
    /// the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half of the key as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        self.public.clone()
    }

    /// The key in the form jsonwebtoken signs with.
    pub(crate) fn encoding_key(&self) -> Result<EncodingKey, KeyError> {
        let der = self.key.to_pkcs8_der().map_err(|_| KeyError::Encode)?;
        Ok(EncodingKey::from_ed_der(der.as_bytes()))
    }
}

fn temporary_sibling(path: &Path) -> Result<PathBuf, KeyError> {
    let name = path.file_name().ok_or_else(|| {
        io_error(
            "write",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    Ok(path.with_file_name(tmp_name))
}

fn write_private_file(path: &Path, contents: &str) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "token signing key file is accessible to group or others; expected mode 0600");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {

    use super::*;

    /// `jwk` with one member replaced (or removed, for `null`), as a peer could send it.
    fn altered(jwk: &Jwk, member: &str, value: serde_json::Value) -> Jwk {
        let mut json = serde_json::to_value(jwk).unwrap();
        json[member] = value;
        let object = json.as_object_mut().unwrap();
        object.retain(|_, value| !value.is_null());
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn kid_matches_rfc8037_thumbprint_example() {
        // RFC 8037 appendix A.3.
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }))
        .unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn public_jwk_has_ed25519_members_and_kid() {
        let key = SigningKey::generate().unwrap();
        let jwk = key.public_jwk();
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["crv"], "Ed25519");
        assert_eq!(json["alg"], "EdDSA");
        assert_eq!(json["use"], "sig");
        assert_eq!(json["kid"], key.kid());
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), key.kid());
        assert_eq!(decoding_key(&jwk).unwrap().0, key.kid());
    }

    #[test]
    fn proto_roundtrip_keeps_the_jwk() {
        let jwk = SigningKey::generate().unwrap().public_jwk();
        let wire = jwk_to_proto(&jwk);
        assert_eq!((wire.kty.as_str(), wire.r#use.as_str()), ("OKP", "sig"));
        assert_eq!(jwk_from_proto(wire).unwrap(), jwk);
    }

    #[test]
    fn pem_roundtrip_keeps_the_key() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
    }

    #[test]
    fn generated_keys_differ() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
    }

    #[test]
    fn rejects_non_ed25519_jwks() {
        use serde_json::{Value, json};
        let good = SigningKey::generate().unwrap().public_jwk();
        let cases = [
            ("kty", json!("EC")),
            ("crv", json!("X25519")),
            ("alg", json!("ES256")),
            ("alg", Value::Null),
            ("use", json!("enc")),
            ("x", json!("AAAA")),
            ("x", json!("not base64!")),
            ("kid", json!("")),
            ("kid", Value::Null),
        ];
        for (member, value) in cases {
            let jwk = altered(&good, member, value);
            assert!(
                matches!(decoding_key(&jwk), Err(KeyError::UnsupportedJwk { .. })),
                "accepted {jwk:?}"
            );
        }
    }
}
