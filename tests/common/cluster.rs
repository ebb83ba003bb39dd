//! Multi-node helpers: real `marie node --role …` processes on 127.0.0.1, each with its
//! own data dir and ports, joined through the server's cluster port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{free_port, kill_and_reap, marie_bin, run_with_stdin, send_signal};

/// The cookie every node of a test cluster shares.
pub const COOKIE: &str = "cluster-test-cookie";

/// A test cluster's shared configuration and directory.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// The server's cluster port (every node's seed).
    pub server_port: u16,
    config: PathBuf,
}

/// One node process.
pub struct Node {
    /// Its name.
    pub name: String,
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
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            name: name.into(),
            port,
            http_port: free_port(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
            child: None,
            starts: 0,
        };
        node.env
            .push(("MARIE_CONFIG".into(), self.config.display().to_string()));
        node.spawn();
        node.wait_listening();
        node
    }

    /// Runs the CLI against the node listening on `port`.
    pub fn cli(&self, port: u16, args: &[&str]) -> Output {
        self.cli_with_stdin(port, args, b"")
    }

    /// Runs the CLI against `port` with `stdin`.
    pub fn cli_with_stdin(&self, port: u16, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = Command::new(marie_bin());
        command
            .current_dir(self.dir.path())
            .env("MARIE_CONFIG", &self.config)
            .env("NO_COLOR", "1")
            .args(args)
            .arg("--connect")
            .arg(format!("127.0.0.1:{port}"));
        run_with_stdin(command, stdin)
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

impl Node {
    fn spawn(&mut self) {
        self.starts += 1;
        let log = File::create(self.dir.join(format!("node-{}.log", self.starts))).expect("log");
        let child = Command::new(marie_bin())
            .current_dir(&self.dir)
            .args(&self.args)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("MARIE_NODE__NAME", &self.name)
            .env("MARIE_CLUSTER__PORT", self.port.to_string())
            .env("MARIE_HTTP__PORT", self.http_port.to_string())
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
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("node {} exited with {status}:\n{}", self.name, self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "node {} not listening in 30 s:\n{}",
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
