//! Layered configuration, the same way for every binary of the platform.
//!
//! Lowest precedence first:
//! 1. the settings type's [`Default`] (the embedded defaults: SQLite, loopback ports);
//! 2. an optional TOML file (`--config FILE`);
//! 3. environment variables named `PREFIX__SECTION__KEY` (`USERS__GRPC__ADDR`), where
//!    `__` separates nesting levels. A list setting the component declares in
//!    [`Layered::ENV_LISTS`] takes a comma-separated value
//!    (`GATEWAY__RATE_LIMIT__TRUSTED_PROXIES=10.0.0.0/8, 192.168.0.0/16`): each item is
//!    trimmed, empty items are dropped (so an empty value is an empty list), and no
//!    item is parsed as a number or boolean; every other value is taken whole, commas
//!    included.
//!
//! Settings types are plain `serde` structs; `#[serde(deny_unknown_fields)]` on them
//! turns a misspelt key into an error instead of a silently ignored line. Every error
//! names the key it is about, and is returned before the caller binds any port.

use std::collections::HashMap;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The settings file is missing, unreadable or not valid TOML.
    #[error("cannot read configuration file {path}: {source}")]
    File {
        /// The file named on the command line.
        path: String,
        /// What went wrong, with the line where it did.
        source: Box<config::ConfigError>,
    },
    /// A value has the wrong type or shape; the message names the key.
    #[error("invalid configuration: {0}")]
    Invalid(Box<config::ConfigError>),
    /// A value parsed but breaks a rule of the component (checked by the caller).
    #[error("invalid configuration: `{key}`: {reason}")]
    Rule {
        /// The dotted key, for example `database.url`.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

impl ConfigError {
    /// A value that parsed but is not acceptable.
    pub fn rule(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Rule {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A setting that breaks a rule its type does not express, as the check of a section
/// shared by several services reports it; `?` turns it into the [`ConfigError`] that
/// names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {reason}")]
pub struct InvalidSetting {
    /// The dotted key, for example `auth.issuer`.
    pub key: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl InvalidSetting {
    /// `field` of the section embedded as `section` breaks a rule: `reason`.
    pub fn new(section: &str, field: &str, reason: &'static str) -> Self {
        Self {
            key: format!("{section}.{field}"),
            reason,
        }
    }
}

impl From<InvalidSetting> for ConfigError {
    fn from(invalid: InvalidSetting) -> Self {
        Self::rule(invalid.key, invalid.reason)
    }
}

/// Where the layers come from.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// Environment variable prefix without the separator, for example `USERS`.
    pub env_prefix: &'a str,
    /// The optional TOML file.
    pub file: Option<&'a Path>,
    /// The environment; `None` reads the process environment. Tests pass a map so
    /// they never have to mutate the process environment.
    pub env: Option<HashMap<String, String>>,
    /// Dotted keys (`rate_limit.trusted_proxies`) whose environment value is a
    /// comma-separated list.
    pub lists: &'a [&'a str],
}

impl<'a> Sources<'a> {
    /// The process environment under `env_prefix`, and no file.
    pub fn new(env_prefix: &'a str) -> Self {
        Self {
            env_prefix,
            file: None,
            env: None,
            lists: &[],
        }
    }

    /// Declares which keys' environment values are comma-separated lists.
    #[must_use]
    pub fn with_lists(mut self, lists: &'a [&'a str]) -> Self {
        self.lists = lists;
        self
    }

    /// Adds the TOML file.
    #[must_use]
    pub fn with_file(mut self, file: Option<&'a Path>) -> Self {
        self.file = file;
        self
    }

    /// Replaces the process environment with `env`.
    #[must_use]
    pub fn with_env<K, V>(mut self, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(env.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }
}

/// A component's settings type: where its environment variables live and the rules
/// its values must follow; loading comes for free.
pub trait Layered: Default + Serialize + DeserializeOwned {
    /// The environment variable prefix, for example `USERS`.
    const ENV_PREFIX: &'static str;

    /// Dotted keys of the list settings an environment variable may set, as one
    /// comma-separated value. Only these are split: any other value may contain commas.
    const ENV_LISTS: &'static [&'static str] = &[];

    /// Rules the types alone do not express.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Loads from the defaults, `file` and the process environment, then checks.
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(Sources::new(Self::ENV_PREFIX).with_file(file))
    }

    /// Loads from explicit sources, then checks.
    fn load_from(sources: Sources<'_>) -> Result<Self, ConfigError> {
        let settings: Self = load(sources.with_lists(Self::ENV_LISTS))?;
        settings.validate()?;
        Ok(settings)
    }
}

/// Fails with `key` named unless `url` is an `http://` or `https://` URL.
pub fn require_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::rule(
            key,
            "must start with http:// or https://",
        ))
    }
}

/// Fails with `key` named unless `value` is at least 1.
pub fn require_positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        Err(ConfigError::rule(key, "must be at least 1"))
    } else {
        Ok(())
    }
}

/// Loads `T` from its defaults, then the file, then the environment.
pub fn load<T>(sources: Sources<'_>) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let defaults =
        Config::try_from(&T::default()).map_err(|e| ConfigError::Invalid(Box::new(e)))?;
    let mut builder = Config::builder().add_source(defaults);

    if let Some(path) = sources.file {
        let display = path.display().to_string();
        // Read here rather than through `File::from(path)` so a missing file is an
        // error with its path, never a silent fallback to defaults.
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: display.clone(),
            source: Box::new(config::ConfigError::Foreign(Box::new(e))),
        })?;
        let parsed = Config::builder()
            .add_source(File::from_str(&text, FileFormat::Toml))
            .build()
            .map_err(|source| ConfigError::File {
                path: display,
                source: Box::new(source),
            })?;
        builder = builder.add_source(parsed);
    }

    let env: Env = match sources.env {
        Some(env) => env,
        None => std::env::vars().collect(),
    };
    let (lists, env) = split_lists(env, sources.env_prefix, sources.lists);
    // Numbers and booleans are typed here rather than left as strings for serde to
    // coerce: a section embedded with `#[serde(flatten)]` is deserialized from a
    // buffer that cannot turn "30" into a u64. String fields still accept them.
    builder = builder.add_source(
        Environment::with_prefix(sources.env_prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    // Lists are set after the environment, as the environment's own values.
    for (key, items) in lists {
        builder = builder
            .set_override(key, items)
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
    }

    builder
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// Environment variables by name.
type Env = HashMap<String, String>;

/// List settings from the environment: dotted key and items.
type EnvLists = Vec<(String, Vec<String>)>;

/// Takes the declared list keys out of `env`: their values split at commas, each item
/// trimmed and empty ones dropped. The `config` crate's own splitting keeps the spaces
/// and the empty items and would turn a one-item list that looks like a number into a
/// number. Returns the lists by dotted key, and the rest of the environment.
fn split_lists(env: Env, prefix: &str, lists: &[&str]) -> (EnvLists, Env) {
    let prefix = format!("{}__", prefix.to_lowercase());
    let mut found = Vec::new();
    let mut rest = HashMap::with_capacity(env.len());
    for (name, value) in env {
        let key = name
            .to_lowercase()
            .strip_prefix(&prefix)
            .map(|key| key.replace("__", "."));
        match key {
            Some(key) if lists.contains(&key.as_str()) => {
                let items = value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect();
                found.push((key, items));
            }
            _ => {
                rest.insert(name, value);
            }
        }
    }
    (found, rest)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::SocketAddr;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        grpc: Grpc,
        database: Database,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Grpc {
        addr: SocketAddr,
        concurrency_limit: u32,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Database {
        url: String,
        max_connections: u32,
    }

    impl Default for Grpc {
        fn default() -> Self {
            Self {
                addr: "127.0.0.1:50051".parse().unwrap(),
                concurrency_limit: 100,
            }
        }
    }
    impl Default for Database {
        fn default() -> Self {
            Self {
                url: "sqlite://data/x.db".into(),
                max_connections: 5,
            }
        }
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s: Settings = load(Sources::new("SVC").with_env(no_env())).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let file = toml_file(
            "[grpc]\naddr = \"0.0.0.0:9000\"\nconcurrency_limit = 7\n[database]\nurl = \"postgres://file\"\n",
        );
        let s: Settings = load(Sources::new("SVC").with_file(Some(file.path())).with_env([
            ("SVC__GRPC__ADDR", "0.0.0.0:9999"),
            ("OTHER__GRPC__ADDR", "1.1.1.1:1"),
        ]))
        .unwrap();
        assert_eq!(s.grpc.addr, "0.0.0.0:9999".parse::<SocketAddr>().unwrap());
        assert_eq!(
            s.grpc.concurrency_limit, 7,
            "file value kept where env is silent"
        );
        assert_eq!(s.database.url, "postgres://file");
        assert_eq!(
            s.database.max_connections, 5,
            "default kept where file is silent"
        );
    }

    #[test]
    fn env_numbers_are_parsed() {
        let s: Settings =
            load(Sources::new("SVC").with_env([("SVC__DATABASE__MAX_CONNECTIONS", "42")])).unwrap();
        assert_eq!(s.database.max_connections, 42);
    }

    #[test]
    fn numeric_env_values_still_fill_string_fields() {
        let s: Settings =
            load(Sources::new("SVC").with_env([("SVC__DATABASE__URL", "12345")])).unwrap();
        assert_eq!(s.database.url, "12345");
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Outer {
        section: Section,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Section {
        #[serde(flatten)]
        shared: Shared,
        own: bool,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Shared {
        secs: u64,
    }

    #[test]
    fn flattened_sections_take_typed_env_values() {
        let s: Outer = load(
            Sources::new("SVC")
                .with_env([("SVC__SECTION__SECS", "30"), ("SVC__SECTION__OWN", "true")]),
        )
        .unwrap();
        assert_eq!(s.section.shared.secs, 30);
        assert!(s.section.own);
        let err =
            load::<Outer>(Sources::new("SVC").with_env([("SVC__SECTION__SEC", "1")])).unwrap_err();
        assert!(err.to_string().contains("sec"), "{err}");
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Lists {
        net: Net,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Net {
        proxies: Vec<String>,
        url: String,
    }

    fn lists_from(env: &[(&str, &str)]) -> Result<Lists, ConfigError> {
        load(
            Sources::new("SVC")
                .with_env(env.iter().copied())
                .with_lists(&["net.proxies"]),
        )
    }

    #[test]
    fn declared_lists_are_comma_separated_and_nothing_else_is_split() {
        let env = [
            ("SVC__NET__PROXIES", "10.0.0.0/8,192.168.0.0/16"),
            ("SVC__NET__URL", "redis://a,b"),
        ];
        let s = lists_from(&env).unwrap();
        assert_eq!(s.net.proxies, ["10.0.0.0/8", "192.168.0.0/16"]);
        assert_eq!(s.net.url, "redis://a,b");

        let one = lists_from(&[("SVC__NET__PROXIES", "10.0.0.0/8")]).unwrap();
        assert_eq!(one.net.proxies, ["10.0.0.0/8"]);

        // Undeclared, a list cannot come from the environment at all.
        let err = load::<Lists>(Sources::new("SVC").with_env(env)).unwrap_err();
        assert!(err.to_string().contains("net.proxies"), "{err}");
    }

    #[test]
    fn list_items_are_trimmed_and_never_typed() {
        let spaced = lists_from(&[("SVC__NET__PROXIES", " a , b,,c ,")]).unwrap();
        assert_eq!(spaced.net.proxies, ["a", "b", "c"]);

        let empty = lists_from(&[("SVC__NET__PROXIES", "")]).unwrap();
        assert!(empty.net.proxies.is_empty());

        // One item that reads as a number or a boolean is still a one-item list.
        for value in ["42", "true"] {
            let one = lists_from(&[("SVC__NET__PROXIES", value)]).unwrap();
            assert_eq!(one.net.proxies, [value]);
        }

        // The file's list is replaced by the environment's, not merged with it.
        let file = toml_file("[net]\nproxies = [\"from-file\"]\n");
        let s: Lists = load(
            Sources::new("SVC")
                .with_file(Some(file.path()))
                .with_env([("SVC__NET__PROXIES", "x,y")])
                .with_lists(&["net.proxies"]),
        )
        .unwrap();
        assert_eq!(s.net.proxies, ["x", "y"]);
    }

    #[test]
    fn bad_env_value_names_the_key() {
        let err = load::<Settings>(
            Sources::new("SVC").with_env([("SVC__DATABASE__MAX_CONNECTIONS", "many")]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("database.max_connections"), "{msg}");
    }

    #[test]
    fn bad_address_names_the_key() {
        let err =
            load::<Settings>(Sources::new("SVC").with_env([("SVC__GRPC__ADDR", "not-an-addr")]))
                .unwrap_err();
        assert!(err.to_string().contains("grpc.addr"), "{err}");
    }

    /// Loads from `file` alone, with no environment.
    fn from_file(file: &Path) -> Result<Settings, ConfigError> {
        load(Sources::new("SVC").with_file(Some(file)).with_env(no_env()))
    }

    #[test]
    fn unknown_key_in_file_is_an_error() {
        let file = toml_file("[grpc]\nadress = \"0.0.0.0:1\"\n");
        let err = from_file(file.path()).unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_with_its_path() {
        let err = from_file(Path::new("/nonexistent/settings.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/settings.toml"),
            "{err}"
        );
    }

    #[test]
    fn malformed_toml_is_an_error() {
        let file = toml_file("[grpc\naddr = ");
        let err = from_file(file.path()).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err}");
    }
}
