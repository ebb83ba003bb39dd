//! Clusters of several nodes: real `marie node --role …` processes on 127.0.0.1, each
//! with its own data dir and ports, joined through the server's cluster port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{
    free_port, kill_and_reap, marie_bin, run_with_stdin, send_signal, stderr, stdout, write_files,
};

/// The cookie every node of a test cluster shares.
pub const COOKIE: &str = "cluster-test-cookie";

/// A test cluster's shared configuration and directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The server's cluster port (every node's seed).
    pub server_port: u16,
    config: PathBuf,
    /// Environment of every node and CLI run.
    env: Vec<(String, String)>,
    /// Whether nodes are started with `MARIE_NODE__NAME` (else they name themselves).
    names_nodes: bool,
}

/// Where a node runs: the address it listens on and advertises, and the command that
/// starts it there (empty: this process's network namespace).
#[derive(Clone, Debug)]
pub struct Placement {
    /// Its cluster and HTTP address.
    pub host: String,
    /// The command `marie` runs under (e.g. `ip netns exec NAME`).
    pub launcher: Vec<String>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            host: "127.0.0.1".into(),
            launcher: Vec::new(),
        }
    }
}

/// One node process.
pub struct Node {
    /// Its name.
    pub name: String,
    /// Where it runs.
    pub place: Placement,
    /// Its cluster port.
    pub port: u16,
    /// Its HTTP port.
    pub http_port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Cluster {
    /// A cluster whose nodes share `extra` configuration (pools, TLS…).
    pub fn new(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server_port = free_port();
        let config = dir.path().join("cluster.toml");
        let text = format!(
            "[cluster]\nseeds = [\"127.0.0.1:{server_port}\"]\ncookie = \"{COOKIE}\"\n{extra}\n"
        );
        std::fs::write(&config, text).expect("write the config");
        Cluster {
            dir,
            server_port,
            config,
            env: Vec::new(),
            names_nodes: true,
        }
    }

    /// A cluster started as a new user would: every node from the shipped
    /// `cluster.toml` untouched, the cookie and the seed in the environment, and no
    /// node name given.
    pub fn shipped() -> Cluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let server_port = free_port();
        let env = [
            ("MARIE_CLUSTER__COOKIE", COOKIE.to_string()),
            (
                "MARIE_CLUSTER__SEEDS",
                format!("[\"127.0.0.1:{server_port}\"]"),
            ),
        ];
        Cluster {
            dir,
            server_port,
            config: shipped_config(),
            env: env.map(|(k, v)| (k.to_string(), v)).to_vec(),
            names_nodes: false,
        }
    }

    /// The shared configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Starts a node `name` with `role` arguments (e.g. `["node", "--role", "server"]`).
    pub fn start(&self, name: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        let port = if args.contains(&"server") {
            self.server_port
        } else {
            free_port()
        };
        self.start_on(port, name, args, env)
    }

    /// Starts a node `name` on the cluster port `port` (one that others were told to
    /// dial before it started).
    pub fn start_on(&self, port: u16, name: &str, args: &[&str], env: &[(&str, &str)]) -> Node {
        self.start_placed(&Placement::default(), port, name, args, env)
    }

    /// Starts a node `name` at `place` on the cluster port `port`; it listens on and
    /// advertises `place.host`.
    pub fn start_placed(
        &self,
        place: &Placement,
        port: u16,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Node {
        let dir = self.dir.path().join(name);
        let http_port = free_port();
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.extend(["--data-dir".into(), dir.join("data").display().to_string()]);
        let mut node_env = vec![
            ("MARIE_CLUSTER__PORT".to_string(), port.to_string()),
            ("MARIE_HTTP__PORT".to_string(), http_port.to_string()),
            (
                "MARIE_CONFIG".to_string(),
                self.config.display().to_string(),
            ),
        ];
        if place.host != Placement::default().host {
            for key in ["MARIE_CLUSTER__HOST", "MARIE_HTTP__HOST"] {
                node_env.push((key.into(), place.host.clone()));
            }
        }
        if self.names_nodes {
            node_env.push(("MARIE_NODE__NAME".into(), name.into()));
        }
        node_env.extend(self.env.iter().cloned());
        node_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Node::start_at(place, name, dir, (port, http_port), args, node_env)
    }

    /// The cluster's directory (each node's is a folder in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the CLI against the node listening on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> Output {
        self.cli_with_stdin(port, args, b"")
    }

    /// Runs the CLI against `port` with `stdin`.
    pub fn cli_with_stdin(&self, port: u16, args: &[&str], stdin: &[u8]) -> Output {
        self.cli_to(&format!("127.0.0.1:{port}"), args, stdin)
    }

    /// Runs the CLI against the node at `addr` (`host:port`) with `stdin`.
    pub fn cli_to(&self, addr: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = Command::new(marie_bin());
        command
            .current_dir(self.dir.path())
            .env("MARIE_CONFIG", &self.config)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .arg("--connect")
            .arg(addr);
        run_with_stdin(command, stdin)
    }

    /// Submits `n` sleep jobs of `ms` to the pool `cpu-general` through the node on
    /// `port`; returns the accepted ids (every one must be accepted).
    pub fn submit_sleeps(&self, port: u16, ms: u64, n: usize) -> Vec<String> {
        let payload = ms.to_string().into_bytes();
        self.submit_many(port, "cpu-general", "sleep", &payload, n)
    }

    /// Submits `n` jobs of `payload` to `pool`'s `handler` through the node on `port`;
    /// returns the accepted ids (every one must be accepted).
    pub fn submit_many(
        &self,
        port: u16,
        pool: &str,
        handler: &str,
        payload: &[u8],
        n: usize,
    ) -> Vec<String> {
        let dir = tempfile::tempdir().expect("inputs");
        let files = write_files(dir.path(), (0..n).map(|_| payload.to_vec()));
        let mut args = vec!["submit", "--pool", pool, "--handler", handler, "--json"];
        args.extend(files.iter().map(String::as_str));
        let out = self.cli(port, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("JSON line");
                v["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("not accepted: {line}"))
                    .to_owned()
            })
            .collect()
    }

    /// The capacity report through the node on `port`, once it answers.
    pub fn capacity(&self, port: u16) -> Option<Value> {
        let out = self.cli(port, &["capacity"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("capacity JSON"))
    }

    /// Slots of `pool` in the capacity seen through `port` (0 when unknown).
    pub fn pool_capacity(&self, port: u16, pool: &str) -> u64 {
        self.capacity(port)
            .and_then(|c| {
                c["result"]["slots"]
                    .as_array()?
                    .iter()
                    .find(|p| p["name"] == pool)
                    .and_then(|p| p["capacity"].as_u64())
            })
            .unwrap_or(0)
    }

    /// Waits until `pool` has `slots` through `port`; returns how long it took.
    pub fn wait_for_capacity(
        &self,
        port: u16,
        pool: &str,
        slots: u64,
        limit: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let now = self.pool_capacity(port, pool);
            if now == slots {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "pool {pool} has {now} slots, not {slots}, after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Cluster {
    /// Waits (at most `limit`) until the store has held each of `ids` as running (one
    /// look per call, seen over the looks), through the node at `addr` (`host:port`).
    pub fn wait_until_all_ran(&self, addr: &str, ids: &[String], limit: Duration) {
        let mut seen = std::collections::HashSet::new();
        let deadline = Instant::now() + limit;
        while !ids.iter().all(|id| seen.contains(id)) {
            assert!(
                Instant::now() < deadline,
                "only {} of {} jobs ran",
                seen.len(),
                ids.len()
            );
            let args = ["jobs", "--state", "running", "--limit", "1000", "--json"];
            let out = self.cli_to(addr, &args, b"");
            let page: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            seen.extend(
                page["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|job| job["id"].as_str().map(str::to_owned)),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `cluster.toml` the project ships.
pub fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml")
}

impl Node {
    /// Starts `marie <args>` with `env` in `dir` (created), as a node `name` listening
    /// on the cluster and HTTP ports `ports`; waits until its cluster port accepts
    /// connections.
    pub fn start(
        name: &str,
        dir: PathBuf,
        ports: (u16, u16),
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Node {
        Node::start_at(&Placement::default(), name, dir, ports, args, env)
    }

    /// [`Node::start`] at `place`.
    pub fn start_at(
        place: &Placement,
        name: &str,
        dir: PathBuf,
        ports: (u16, u16),
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Node {
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            name: name.into(),
            place: place.clone(),
            port: ports.0,
            http_port: ports.1,
            args,
            env,
            dir,
            child: None,
            starts: 0,
        };
        node.spawn();
        node.wait_listening();
        node
    }

    /// `http://<host>:<http port><path>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.place.host, self.http_port)
    }

    /// Its cluster address, `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.place.host, self.port)
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.dir.join(format!("node-{}.log", self.starts))).expect("log");
        let (program, launcher_args) = match self.place.launcher.split_first() {
            Some((program, rest)) => (program.as_str(), rest.to_vec()),
            None => (marie_bin(), Vec::new()),
        };
        let marie = (!self.place.launcher.is_empty()).then(marie_bin);
        let child = Command::new(program)
            .args(launcher_args)
            .args(marie)
            .current_dir(&self.dir)
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a marie node");
        self.child = Some(child);
    }

    /// Waits until the node's cluster port accepts connections.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect((self.place.host.as_str(), self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("node {} exited with {status}:\n{}", self.name, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "node {} not listening in 60 s:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times the node was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Every start's log, concatenated.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("node-{n}.log"))).unwrap_or_default()
            })
            .collect()
    }

    /// Sends `signal` to the node.
    pub fn signal(&self, signal: Signal) {
        send_signal(self.child.as_ref().expect("the node is running"), signal);
    }

    /// Waits for the node to exit by itself; returns whether it exited cleanly.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let child = self.child.take().expect("the node is running");
        super::wait_exit(child, limit, || self.logs())
    }

    /// Whether the node's process still runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Starts the node again with the same name, ports and data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the node first");
        self.spawn();
        self.wait_listening();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A node stopped by a test must be woken to die.
        if let Some(child) = &self.child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                Signal::SIGCONT,
            );
        }
        kill_and_reap(&mut self.child);
    }
}
