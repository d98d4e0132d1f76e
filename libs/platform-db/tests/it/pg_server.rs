//! A PostgreSQL server of the test's own: a fresh cluster on a free port, with or
//! without TLS, stopped and removed when the value is dropped (also when the test
//! panics).
//!
//! The shared test server cannot be reconfigured (TLS on or off, `hostssl`-only
//! access), so these tests start their own from the installed binaries, the way
//! `scripts/ensure-postgres.sh` does. Missing binaries fail the test with a hint: a
//! TLS test that quietly does not run proves nothing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The CA the test trusts (or not) and the server certificate it signed.
#[derive(Debug)]
pub(crate) struct TestPki {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    /// The server certificate, PEM: for `localhost` and `127.0.0.1`.
    pub(crate) server_cert_pem: String,
    /// The server certificate's private key, PKCS#8 PEM.
    pub(crate) server_key_pem: String,
}

impl TestPki {
    /// A new CA named `ca_name`, and a server certificate for `localhost` and
    /// `127.0.0.1` signed by it.
    pub(crate) fn generate(ca_name: &str) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = server.signed_by(&key, &ca).unwrap();
        Self {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
        }
    }
}

/// How the server takes connections.
#[derive(Debug)]
pub(crate) enum Access<'a> {
    /// TLS on, with this certificate; `pg_hba.conf` accepts TLS connections only
    /// (`hostssl`).
    TlsOnly(&'a TestPki),
    /// TLS off (`ssl = off`); plain connections accepted.
    Plaintext,
}

/// A running throwaway server; dropping it stops it and deletes its files.
#[derive(Debug)]
pub(crate) struct PgServer {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run_as: Option<String>,
    // Declared last: removed after the server is stopped.
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it on a
    /// free port of 127.0.0.1.
    pub(crate) fn start(access: Access<'_>) -> Self {
        let bin = server_binaries();
        let run_as = server_account();
        let dir = tempfile::tempdir().unwrap();
        if let Some(user) = &run_as {
            give_to(dir.path(), user);
        }
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let mut initdb = command(&run_as, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--no-locale", "--no-instructions", "--no-sync"]);
        run(initdb, "initdb");

        let port = free_port();
        let mut conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n\
             fsync = off\nmax_connections = 20\n"
        );
        let hba = match access {
            Access::TlsOnly(pki) => {
                let cert = dir.path().join("server.crt");
                let key = dir.path().join("server.key");
                write_private(&cert, &pki.server_cert_pem, &run_as);
                write_private(&key, &pki.server_key_pem, &run_as);
                conf.push_str(&format!(
                    "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                    cert.display(),
                    key.display()
                ));
                "hostssl all all 127.0.0.1/32 trust\n"
            }
            Access::Plaintext => {
                conf.push_str("ssl = off\n");
                "host all all 127.0.0.1/32 trust\n"
            }
        };
        append(&data.join("postgresql.conf"), &conf);
        // Replaces initdb's rules: only the one line above decides who gets in.
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();

        let server = Self {
            port,
            bin,
            data,
            log,
            run_as,
            _dir: dir,
        };
        let mut start = command(&server.run_as, &server.bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&server.data)
            .arg("-l")
            .arg(&server.log)
            .args(["-w", "-t", "60", "start"]);
        let out = start.output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed ({}): {}{}; server log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        server
    }

    /// A URL of database `postgres` at `host` (`localhost` or `127.0.0.1`) on this
    /// server's port, with `query` appended after `?`.
    pub(crate) fn url(&self, userinfo: &str, host: &str, query: &str) -> String {
        format!(
            "postgres://{userinfo}@{host}:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut stop = command(&self.run_as, &self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"]);
        let stopped = stop.output().is_ok_and(|out| out.status.success());
        if !stopped {
            // The postmaster's pid is the first line of its pid file.
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap_or_default();
            if let Some(pid) = pid.lines().next().filter(|p| !p.is_empty()) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
}

/// A folder holding `initdb` and `pg_ctl`: from `PATH`, `/usr/local/bin`, or the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_binaries() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    candidates.push(PathBuf::from("/usr/local/bin"));
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(versions.into_iter().map(|(_, bin)| bin));
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb and pg_ctl) in PATH, /usr/local/bin or \
                 /usr/lib/postgresql/*/bin; these tests start their own server: install them \
                 (Debian: apt-get install postgresql, or `scripts/ensure-postgres.sh binaries` \
                 as root)"
            )
        })
}

/// The account the server runs as when the tests run as root (PostgreSQL refuses to
/// run as root): `PG_TEST_OS_USER`, else `postgres`, as in `scripts/ensure-postgres.sh`.
fn server_account() -> Option<String> {
    if id(&["-u"]) != "0" {
        return None;
    }
    let user = std::env::var("PG_TEST_OS_USER").unwrap_or_else(|_| "postgres".to_owned());
    let known = Command::new("id")
        .args(["-u", &user])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        known,
        "running as root, the test server needs an unprivileged account `{user}` \
         (PG_TEST_OS_USER); `scripts/ensure-postgres.sh` creates it"
    );
    Some(user)
}

fn id(args: &[&str]) -> String {
    let out = Command::new("id").args(args).output().unwrap();
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Makes `path` owned by `user`, so the server account can use it.
fn give_to(path: &Path, user: &str) {
    let uid = id(&["-u", user]).parse().unwrap();
    let gid = id(&["-g", user]).parse().unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

/// `program`, run as `user` when there is one.
fn command(user: &Option<String>, program: &Path) -> Command {
    match user {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `contents` readable by its owner only, the server account when there is
/// one: PostgreSQL refuses a key file others can read.
fn write_private(path: &Path, contents: &str, owner: &Option<String>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some(user) = owner {
        give_to(path, user);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
