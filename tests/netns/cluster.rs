//! A cluster of real `marie node` processes, each in a network namespace of its own on
//! one bridge ([`super::Net`]), driven with the real CLI from this namespace; and the
//! checks the chaos tests share.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Host, Net, Relay};
use crate::common::cluster::{Cluster, Node};
use crate::common::{stderr, stdout, write_files};

/// The pool the chaos tests run.
pub const POOL: &str = "cpu-general";
/// Bound of every wait for a state: generous, for a machine busy with other work.
pub const WAIT: Duration = Duration::from_secs(120);

/// A node and the namespace it runs in (the node goes first when dropped).
pub struct Member {
    /// The node.
    pub node: Node,
    /// Its namespace.
    pub host: Host,
}

/// Nodes in namespaces on one bridge, sharing a configuration (dropped in this order:
/// the nodes, the relay, the bridge).
pub struct Chaos {
    members: Vec<Member>,
    _relay: Option<Relay>,
    cluster: Cluster,
    net: Net,
}

impl Chaos {
    /// A bridge and the cluster's configuration (`extra`); no node yet.
    pub fn new(extra: &str) -> Chaos {
        Chaos::on(Net::new(), None, extra)
    }

    /// The cluster's configuration (`extra`) on `net`, where `relay` forwards.
    pub fn on(net: Net, relay: Option<Relay>, extra: &str) -> Chaos {
        Chaos {
            members: Vec::new(),
            _relay: relay,
            cluster: Cluster::new(extra),
            net,
        }
    }

    /// A namespace for node `name`, not started yet.
    pub fn host(&self, name: &str) -> Host {
        self.net.host(name)
    }

    /// Starts `marie node ARGS` as `name` on `host`, joining through the nodes at
    /// `seeds`.
    pub fn start(&mut self, host: Host, name: &str, args: &[&str], seeds: &[Ipv4Addr]) {
        let port = self.cluster.server_port;
        let seeds: Vec<String> = seeds.iter().map(|ip| format!("\"{ip}:{port}\"")).collect();
        let seeds = format!("[{}]", seeds.join(", "));
        let env = [("MARIE_CLUSTER__SEEDS", seeds.as_str())];
        let node = self
            .cluster
            .start_placed(&host.placement(), port, name, args, &env);
        self.members.push(Member { node, host });
    }

    /// Node `name` and its namespace.
    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.node.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Node `name`.
    pub fn node(&self, name: &str) -> &Node {
        &self.member(name).node
    }

    /// The CLI against node `name`.
    pub fn cli(&self, name: &str, args: &[&str]) -> Output {
        self.cluster.cli_to(&self.node(name).addr(), args, b"")
    }

    /// Slots of the pool as node `name` reports them (0 when it does not answer).
    pub fn capacity(&self, name: &str) -> u64 {
        let out = self.cli(name, &["capacity"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        report["result"]["slots"]
            .as_array()
            .and_then(|pools| pools.iter().find(|p| p["name"] == POOL))
            .and_then(|p| p["capacity"].as_u64())
            .unwrap_or(0)
    }

    /// Waits until node `name` reports `slots`; returns how long it took.
    pub fn wait_for_capacity(&self, name: &str, slots: u64) -> Duration {
        self.wait_until(&format!("{name} to see {slots} slots"), || {
            self.capacity(name) == slots
        })
    }

    /// Waits (at most [`WAIT`]) until `done`; returns how long it took. A timeout
    /// fails the test with every node's log.
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) -> Duration {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < WAIT,
                "waited {WAIT:?} for {what}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// Submits `n` sleep jobs of `ms` through node `name`.
    pub fn submit(&self, name: &str, ms: u64, n: usize) -> Output {
        let dir = tempfile::tempdir().expect("inputs");
        let files = write_files(dir.path(), (0..n).map(|_| ms.to_string().into_bytes()));
        let mut args = vec!["submit", "--pool", POOL, "--handler", "sleep", "--json"];
        args.extend(files.iter().map(String::as_str));
        self.cli(name, &args)
    }

    /// Submits `n` sleep jobs of `ms` through node `name`; every one must be accepted.
    pub fn submit_all(&self, name: &str, ms: u64, n: usize) -> Vec<String> {
        let out = self.submit(name, ms, n);
        assert!(out.status.success(), "{}", stderr(&out));
        let ids = accepted(&out);
        assert_eq!(ids.len(), n, "{}", stdout(&out));
        ids
    }

    /// Waits for every job through node `name`; returns their final statuses.
    pub fn wait_all(&self, name: &str, ids: &[String]) -> Vec<Value> {
        let mut statuses = Vec::new();
        // In slices: a command line holds only so many ids.
        for chunk in ids.chunks(500) {
            let mut args = vec!["wait", "--json", "--timeout-secs", "180"];
            args.extend(chunk.iter().map(String::as_str));
            let out = self.cli(name, &args);
            statuses.extend(
                stdout(&out)
                    .lines()
                    .map(|l| serde_json::from_str::<Value>(l).expect("status JSON")),
            );
        }
        statuses
    }

    /// Waits until the store has held each of `ids` as running, through node `name`.
    pub fn wait_until_all_ran(&self, name: &str, ids: &[String]) {
        let addr = self.node(name).addr();
        self.cluster.wait_until_all_ran(&addr, ids, WAIT);
    }

    /// Waits until a line of node `name`'s log holds every one of `parts`; returns how
    /// long it took.
    pub fn wait_for_line(&self, name: &str, parts: &[&str]) -> Duration {
        self.wait_until(&format!("{name} to log a line with {parts:?}"), || {
            let logs = self.node(name).logs();
            logs.lines().any(|l| parts.iter().all(|p| l.contains(p)))
        })
    }

    /// Every node's log, for a failure's message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("=== {}\n{}", m.node.name, m.node.logs()))
            .collect()
    }

    /// The SQLite store of the server node `name`, asked with the `sqlite3` shell.
    pub fn sqlite(&self, name: &str, sql: &str) -> String {
        let db = self.cluster.dir().join(name).join("data").join("marie.db");
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("run sqlite3 (scripts/test installs it)");
        assert!(out.status.success(), "sqlite3: {}", stderr(&out));
        stdout(&out).trim().to_owned()
    }
}

/// The ids a `submit --json` accepted.
pub fn accepted(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

/// How many times each job's end was recorded in `logs` (the store writer logs "job
/// ended" once the store took the end, which it does once per job).
pub fn ends(logs: &str) -> HashMap<String, usize> {
    let mut ends = HashMap::new();
    for line in logs.lines().filter(|l| l.contains("job ended")) {
        if let Some(id) = line
            .split("job=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            *ends.entry(id.to_owned()).or_default() += 1;
        }
    }
    ends
}

/// Every job of `ids` succeeded, and its end was recorded exactly once in `logs`.
pub fn assert_each_succeeded_once(statuses: &[Value], ids: &[String], logs: &str) {
    assert_eq!(statuses.len(), ids.len(), "a job is missing");
    let failed: Vec<&Value> = statuses
        .iter()
        .filter(|s| s["state"] != "succeeded")
        .collect();
    assert!(failed.is_empty(), "jobs that did not succeed: {failed:?}");
    let ends = ends(logs);
    for id in ids {
        let count = ends.get(id).copied().unwrap_or(0);
        assert_eq!(count, 1, "job {id} ended {count} times");
    }
}
