//! What the end-to-end tests share: start a real `marie up` process on a free port in
//! its own data directory, drive it with the real `marie` CLI, stop it by PID.

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

#[path = "../../handlers/tests/fixtures/mod.rs"]
pub mod documents;

pub mod cluster;

/// The `marie` binary under test.
pub fn marie_bin() -> &'static str {
    env!("CARGO_BIN_EXE_marie")
}

/// A `marie up` process and its data directory.
pub struct Marie {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    http_port: u16,
    config: Option<PathBuf>,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Marie {
    /// Starts `marie up` with the built-in configuration.
    pub fn start() -> Marie {
        Self::start_with(None, &[])
    }

    /// Starts `marie up` with `config` (TOML text, if any) and extra environment.
    pub fn start_with(config: Option<&str>, env: &[(&str, &str)]) -> Marie {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = config.map(|text| {
            let path = dir.path().join("cluster.toml");
            std::fs::write(&path, text).expect("write the config");
            path
        });
        let mut marie = Marie {
            child: None,
            dir,
            port: free_port(),
            http_port: free_port(),
            config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts: 0,
        };
        marie.spawn();
        marie
    }

    /// The data directory (also the working directory of every process).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the running node.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("marie is running").id()
    }

    /// The cluster port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP API's port: `MARIE_HTTP__PORT` when the test set it, else a free port
    /// chosen at start.
    pub fn http_port(&self) -> u16 {
        self.env
            .iter()
            .find(|(k, _)| k == "MARIE_HTTP__PORT")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(self.http_port)
    }

    /// `http://127.0.0.1:<http port><path>`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port())
    }

    /// The log of the `n`-th start (1-based).
    pub fn log(&self, n: u32) -> String {
        std::fs::read_to_string(self.dir().join(format!("marie-{n}.log"))).unwrap_or_default()
    }

    /// Every start's log, concatenated.
    pub fn all_logs(&self) -> String {
        (1..=self.starts).map(|n| self.log(n)).collect()
    }

    /// `marie` with this node's data dir, ports and configuration (add the command).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(marie_bin());
        cmd.current_dir(self.dir())
            .arg("--data-dir")
            .arg(self.dir().join("data"))
            .env("MARIE_CLUSTER__PORT", self.port.to_string())
            .env("MARIE_HTTP__PORT", self.http_port.to_string())
            .env_remove("MARIE_HTTP__AUTH_TOKEN")
            .env_remove("MARIE_CLUSTER__COOKIE")
            .env("NO_COLOR", "1");
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log =
            File::create(self.dir().join(format!("marie-{}.log", self.starts))).expect("log file");
        let child = self
            .command()
            .arg("up")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start marie up");
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// Waits until the node answers and every configured executor has registered.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("marie up exited with {status}:\n{}", self.log(self.starts));
            }
            let out = self.cli(&["capacity"]);
            if out.status.success() {
                let report: Value = serde_json::from_slice(&out.stdout).expect("capacity JSON");
                let result = &report["result"];
                let ready = result["slots"]
                    .as_array()
                    .is_some_and(|pools| pools.iter().all(|p| p["capacity"] == p["target"]));
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "marie up not ready in 60 s:\n{}",
                self.log(self.starts)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs the CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("run the marie CLI")
    }

    /// Runs the CLI with `stdin` as its input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut command = self.command();
        command.args(args);
        run_with_stdin(command, stdin)
    }

    /// Runs the CLI and parses each stdout line as JSON; panics if the CLI failed to run.
    pub fn cli_json_lines(&self, args: &[&str]) -> Vec<Value> {
        let out = self.cli(args);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "marie {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Sends `signal` to the node.
    pub fn signal(&self, signal: Signal) {
        send_signal(self.child.as_ref().expect("marie is running"), signal);
    }

    /// Kills the node with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        kill_and_reap(&mut self.child);
    }

    /// Waits for the node to exit by itself; returns whether it exited cleanly.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let child = self.child.take().expect("marie is running");
        wait_exit(child, limit, || self.log(self.starts))
    }

    /// Starts the node again on the same data directory and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop marie before restarting it");
        self.spawn();
    }
}

impl Drop for Marie {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// Runs `command` with `stdin` as its input and collects its output.
pub fn run_with_stdin(mut command: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the marie CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("CLI output")
}

/// Waits (at most `limit`, else kills it and fails with `logs`) for a child process to
/// exit by itself; returns whether it exited cleanly.
pub fn wait_exit(child: Child, limit: Duration, logs: impl Fn() -> String) -> bool {
    wait_status(child, limit, logs).success()
}

/// Waits (at most `limit`, else kills it and fails with `logs`) for a child process to
/// exit by itself; returns how it exited.
pub fn wait_status(mut child: Child, limit: Duration, logs: impl Fn() -> String) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for marie") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("marie did not exit within {limit:?}:\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `marie ARGS` with `config` (TOML text) as its configuration, in a temporary
/// directory of its own with free ports, for a command that ends by itself (a node that
/// refuses its configuration). Returns its exit code and stderr; fails the test if it has
/// not ended within a minute.
pub fn run_with_config(config: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, config).expect("write the config");
    let log = dir.path().join("stderr.log");
    let child = Command::new(marie_bin())
        .current_dir(dir.path())
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env("MARIE_CLUSTER__PORT", free_port().to_string())
        .env("MARIE_HTTP__PORT", free_port().to_string())
        .env_remove("MARIE_HTTP__AUTH_TOKEN")
        .env_remove("MARIE_CLUSTER__COOKIE")
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("stderr file"))
        .spawn()
        .expect("run marie");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let status = wait_status(child, Duration::from_secs(60), stderr);
    (status.code(), stderr())
}

/// Sends `signal` to a child process.
pub fn send_signal(child: &Child, signal: Signal) {
    kill(Pid::from_raw(child.id() as i32), signal).expect("signal a child process");
}

/// Kills a child process with SIGKILL, if it runs, and reaps it.
pub fn kill_and_reap(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The status and body of `GET url`, or `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::blocking::get(url).ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().unwrap_or_default()))
}

/// Waits until `GET url` answers `status` (bounded by `limit`); returns the body.
/// `logs` explains a timeout.
pub fn wait_for_status(
    url: &str,
    status: u16,
    limit: Duration,
    logs: impl Fn() -> String,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let answer = http_get(url);
        if let Some((got, body)) = &answer
            && *got == status
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "GET {url} did not answer {status} within {limit:?} (last: {answer:?}):\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Resident and peak memory of a process, in KiB, from /proc (`VmRSS`, `VmHWM`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Writes `payloads` as numbered files in `dir`; returns their paths as strings.
pub fn write_files(dir: &Path, payloads: impl IntoIterator<Item = Vec<u8>>) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("create the input dir");
    payloads
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.join(format!("doc-{i:05}"));
            std::fs::write(&path, bytes).expect("write an input");
            path.display().to_string()
        })
        .collect()
}

/// stderr of a CLI run, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// stdout of a CLI run, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
