//! A real PostgreSQL server for tests, started from the binaries installed on the machine
//! (`initdb`, `pg_ctl`, `createdb`, `psql`: on the `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`, as Debian's `postgresql` package installs them).
//!
//! [`TestPostgres::start`] runs `initdb` into a fresh temporary directory, starts the
//! server on a free `127.0.0.1` port with its unix socket in that directory, and creates
//! the database `marie`, owned by the superuser `marie` whose password is
//! [`PASSWORD`]: TCP connections must give it (scram-sha-256), connections on the socket
//! are trusted (the harness's own `psql`). Dropping the value stops the server
//! (`pg_ctl -m immediate`) and deletes the directory.
//!
//! [`TestPostgres::start_with_tls`] starts one that takes TCP connections over TLS only,
//! as managed Postgres services do: a CA and a server certificate for `localhost` and
//! `127.0.0.1` made at start, `ssl = on` in `postgresql.conf`, and `hostssl` lines alone
//! in `pg_hba.conf`, so that a connection in the clear is refused. The CA is in the PEM
//! file [`TestPostgres::ca_file`].
//!
//! `initdb` and `postgres` refuse to run as root: as root the harness runs them as the
//! `postgres` user (else `nobody`) through `runuser`, and hands it the directory.
//!
//! ```no_run
//! # fn example() -> anyhow::Result<()> {
//! let postgres = marie_test_postgres::TestPostgres::start()?;
//! let url = postgres.url(); // postgres://marie:…@127.0.0.1:PORT/marie
//! postgres.stop()?; // as a crash would
//! postgres.start_again()?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, bail};
use nix::unistd::{Uid, User};
use tempfile::TempDir;

/// The superuser and owner of the database `marie`.
pub const USER: &str = "marie";
/// [`USER`]'s password.
pub const PASSWORD: &str = "throwaway-secret";
/// The database created at start.
pub const DATABASE: &str = "marie";

/// Tries at a free port before giving up (another process may take the one picked).
const PORT_TRIES: usize = 5;

/// A running PostgreSQL server in a temporary directory; dropped, it stops and the
/// directory goes.
pub struct TestPostgres {
    /// Holds the data directory, the socket and the log.
    dir: TempDir,
    /// Where the server binaries are.
    bin: PathBuf,
    /// The unprivileged user the binaries run as when this process is root.
    run_as: Option<String>,
    port: u16,
    /// The CA that signed the server's certificate, when the server takes TLS only.
    ca_file: Option<PathBuf>,
}

impl TestPostgres {
    /// Initialises a cluster, starts the server on a free loopback port and creates the
    /// database [`DATABASE`].
    pub fn start() -> anyhow::Result<TestPostgres> {
        TestPostgres::start_as(Transport::Clear)
    }

    /// As [`TestPostgres::start`], the server taking TCP connections over TLS only, with
    /// a certificate for `localhost` and `127.0.0.1` signed by the CA in
    /// [`TestPostgres::ca_file`].
    pub fn start_with_tls() -> anyhow::Result<TestPostgres> {
        TestPostgres::start_as(Transport::TlsOnly)
    }

    fn start_as(transport: Transport) -> anyhow::Result<TestPostgres> {
        let bin = server_binaries()?;
        let dir = tempfile::Builder::new().prefix("marie-pg-").tempdir()?;
        let run_as = Uid::effective()
            .is_root()
            .then(unprivileged_user)
            .transpose()?;
        if let Some(user) = &run_as {
            hand_over(dir.path(), user)?;
        }
        let mut postgres = TestPostgres {
            dir,
            bin,
            run_as,
            port: 0,
            ca_file: None,
        };
        postgres.init()?;
        if transport == Transport::TlsOnly {
            postgres.ca_file = Some(postgres.require_tls()?);
        }
        for attempt in 1..=PORT_TRIES {
            postgres.port = free_port()?;
            match postgres.start_again() {
                Ok(()) => break,
                Err(e) if attempt < PORT_TRIES && postgres.log().contains("could not bind") => {
                    eprintln!(
                        "test postgres: port {} taken, trying another: {e}",
                        postgres.port
                    );
                }
                Err(e) => return Err(e),
            }
        }
        let socket = postgres.socket_dir();
        postgres.run(
            "createdb",
            &[
                "-h",
                &socket,
                "-p",
                &postgres.port.to_string(),
                "-U",
                USER,
                DATABASE,
            ],
        )?;
        Ok(postgres)
    }

    /// `postgres://marie:PASSWORD@127.0.0.1:PORT/marie`.
    pub fn url(&self) -> String {
        self.url_with_password(PASSWORD)
    }

    /// The URL of the database `marie` with another password (a wrong one, to test
    /// refusals).
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{USER}:{password}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// The PEM file of the CA that signed the server's certificate (a server started
    /// with [`TestPostgres::start_with_tls`]).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` as the superuser on the database `marie`, over the socket;
    /// returns what it printed, unaligned and without headers (`-At`).
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let socket = self.socket_dir();
        let out = self.run(
            "psql",
            &[
                "-h",
                &socket,
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                DATABASE,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Stops the server at once, as a crash would (`pg_ctl -m immediate`): open
    /// connections break, committed data stays.
    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .map(drop)
    }

    /// Starts the (stopped) server again, on the same port, and waits until it accepts
    /// connections.
    pub fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=40 -c shared_buffers=16MB",
            self.port,
            self.socket_dir()
        );
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-t", "120", "-w", "start",
            ],
        )
        .map(drop)
        .with_context(|| format!("the server did not start; its log:\n{}", self.log()))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn init(&self) -> anyhow::Result<()> {
        let pwfile = self.dir.path().join("password");
        std::fs::write(&pwfile, PASSWORD)?;
        if let Some(user) = &self.run_as {
            hand_over(&pwfile, user)?;
        }
        let data = self.data_dir();
        self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                USER,
                &format!("--pwfile={}", pwfile.display()),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )
        .map(drop)
    }

    /// Makes a CA and a server certificate signed by it, turns TLS on and allows TCP
    /// connections over TLS only; returns the CA's PEM file.
    fn require_tls(&self) -> anyhow::Result<PathBuf> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "marie test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate()?;
        let server_cert =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
                .signed_by(&server_key, &issuer)?;

        let ca_file = self.dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem())?;
        let data = self.dir.path().join("data");
        let cert_file = data.join("server.crt");
        let key_file = data.join("server.key");
        std::fs::write(&cert_file, server_cert.pem())?;
        std::fs::write(&key_file, server_key.serialize_pem())?;
        // The server refuses a key that others may read.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
        if let Some(user) = &self.run_as {
            hand_over(&cert_file, user)?;
            hand_over(&key_file, user)?;
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        writeln!(
            conf,
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
            cert_file.display(),
            key_file.display()
        )?;
        // The harness's psql keeps the socket; TCP in the clear has no line to match.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )?;
        Ok(ca_file)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn socket_dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Runs one of the server's binaries (as the unprivileged user when root); fails
    /// with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&path);
                command
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("PGPASSWORD")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .output()
            .with_context(|| format!("cannot run {}", path.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

impl Drop for TestPostgres {
    /// Stops the server if it runs; the directory goes with `dir`.
    fn drop(&mut self) {
        if self.dir.path().join("data/postmaster.pid").exists()
            && let Err(e) = self.stop()
        {
            eprintln!("test postgres: {e:#}");
        }
    }
}

/// How the server takes TCP connections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// In the clear (TLS is off).
    Clear,
    /// Over TLS only.
    TlsOnly,
}

/// The directory of `pg_ctl`: on the `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn server_binaries() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| d.join("pg_ctl").is_file()) {
        // Debian links the binaries onto the PATH one by one: use their real directory.
        let real = std::fs::canonicalize(dir.join("pg_ctl"))?;
        return Ok(real.parent().map_or(dir, Path::to_path_buf));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server binaries: pg_ctl is neither on the PATH nor in \
             /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
        ),
    }
}

/// The user the server runs as when this process is root: `postgres`, else `nobody`.
fn unprivileged_user() -> anyhow::Result<String> {
    for name in ["postgres", "nobody"] {
        if User::from_name(name)?.is_some() {
            return Ok(name.to_owned());
        }
    }
    bail!("running as root, and neither a postgres nor a nobody user exists to run the server")
}

/// Makes `user` the owner of `path`.
fn hand_over(path: &Path, user: &str) -> anyhow::Result<()> {
    let owner = User::from_name(user)?.with_context(|| format!("no user {user}"))?;
    std::os::unix::fs::chown(path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
        .with_context(|| format!("cannot hand {} to {user}", path.display()))
}

/// A port free on 127.0.0.1 at the time of asking.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_answers_restarts_and_leaves_nothing_behind() {
        let postgres = TestPostgres::start().expect("a server");
        let dir = postgres.dir.path().to_path_buf();
        assert_eq!(postgres.psql("SELECT current_user").expect("psql"), USER);
        postgres
            .psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
            .expect("psql");
        postgres.stop().expect("stop");
        assert!(
            postgres.psql("SELECT 1").is_err(),
            "a stopped server answered"
        );
        postgres.start_again().expect("start again");
        assert_eq!(postgres.psql("SELECT x FROM t").expect("psql"), "7");
        drop(postgres);
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }

    #[test]
    fn a_tls_server_takes_verified_tls_and_refuses_the_clear() {
        let postgres = TestPostgres::start_with_tls().expect("a server");
        let ca = postgres.ca_file().expect("a CA").display().to_string();
        let over_tcp = |ssl: &str| {
            let conninfo = format!(
                "host=localhost hostaddr=127.0.0.1 port={} user={USER} password={PASSWORD} dbname={DATABASE} {ssl}",
                postgres.port
            );
            postgres.run(
                "psql",
                &[
                    &conninfo,
                    "-At",
                    "-c",
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                ],
            )
        };
        let verified = over_tcp(&format!("sslmode=verify-full sslrootcert={ca}")).expect("TLS");
        assert_eq!(String::from_utf8_lossy(&verified.stdout).trim(), "t");
        let clear = over_tcp("sslmode=disable").expect_err("a connection in the clear");
        assert!(clear.to_string().contains("no encryption"), "{clear:#}");
    }
}
