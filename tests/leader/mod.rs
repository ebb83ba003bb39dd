//! Several `server` nodes on one throwaway Postgres, one leader fenced by its epoch, and
//! executor nodes: what the leader end-to-end tests and the failover benchmark share.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use marie_test_postgres::TestPostgres;
use serde_json::Value;

use crate::common::cluster::{Cluster, Node};
use crate::common::{free_port, http_get, stdout};

/// Every node's configuration (and the CLI's, which checks it too): the Postgres store
/// at `url`, the default lease (renewed every second, 3 s to live), and a pool of sleep
/// jobs.
pub fn config(url: &str) -> String {
    format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n{REST}")
}

const REST: &str = r#"
pool_size = 4

[leader]
renew_ms = 1000
ttl_ms = 3000

[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 50
handlers = ["sleep"]
"#;

/// The lease's time to live.
pub const TTL: Duration = Duration::from_secs(3);
/// A generous bound on anything a busy machine may take.
pub const WAIT: Duration = Duration::from_secs(120);

/// Two server nodes, two executor nodes and Postgres.
pub struct Setup {
    /// The database every node shares.
    pub postgres: TestPostgres,
    /// The nodes' shared configuration.
    pub cluster: Cluster,
    /// `s1` and `s2`.
    pub servers: Vec<Node>,
    _executors: Vec<Node>,
}

/// The environment of every node: both servers as seeds.
pub fn node_env(ports: [u16; 2]) -> Vec<(String, String)> {
    vec![(
        "MARIE_CLUSTER__SEEDS".into(),
        format!("[\"127.0.0.1:{}\", \"127.0.0.1:{}\"]", ports[0], ports[1]),
    )]
}

/// Starts the server node `name` on the cluster port `port`.
pub fn start_server(cluster: &Cluster, name: &str, port: u16, env: &[(String, String)]) -> Node {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cluster.start_on(port, name, &["node", "--role", "server"], &env)
}

impl Setup {
    /// `s1` leads (started first), `s2` stands by; both see 100 slots. `extra` is more
    /// configuration.
    pub fn start(extra: &str) -> Setup {
        let postgres = TestPostgres::start().expect("a throwaway Postgres server");
        let cluster = Cluster::new(&format!("{}{extra}", config(&postgres.url())));
        let ports = [cluster.server_port, free_port()];
        let env = node_env(ports);
        let s1 = start_server(&cluster, "s1", ports[0], &env);
        wait_for_leader(&s1, "s1");
        let s2 = start_server(&cluster, "s2", ports[1], &env);
        wait_for_leader(&s2, "s1");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let executors: Vec<Node> = ["e1", "e2"]
            .map(|name| {
                cluster.start(
                    name,
                    &["node", "--role", "executor", "--pool", "cpu-general"],
                    &env,
                )
            })
            .into();
        for server in [&s1, &s2] {
            let deadline = Instant::now() + WAIT;
            while cluster.pool_capacity(server.port, "cpu-general") != 100 {
                assert!(
                    Instant::now() < deadline,
                    "{} does not see the executors' 100 slots:\n{}\n{}",
                    server.name,
                    s1.logs(),
                    executors.iter().map(Node::logs).collect::<String>()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Setup {
            postgres,
            cluster,
            servers: vec![s1, s2],
            _executors: executors,
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        self.postgres.psql(sql).expect("psql")
    }

    pub fn succeeded(&self) -> usize {
        self.psql("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
            .parse()
            .expect("a count")
    }

    /// Submits `n` sleep jobs of `ms` through `server`; returns the accepted ids.
    pub fn submit(&self, server: &Node, ms: u64, n: usize) -> Vec<String> {
        self.cluster.submit_sleeps(server.port, ms, n)
    }

    /// Waits for every job through `server`; returns their final statuses.
    pub fn wait_all(&self, server: &Node, ids: &[String]) -> Vec<Value> {
        let mut args = vec!["wait", "--json", "--timeout-secs", "180"];
        args.extend(ids.iter().map(String::as_str));
        let out = self.cluster.cli(server.port, &args);
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("status JSON"))
            .collect()
    }

    /// Every job succeeded, the store holds exactly these jobs, each ended (one row,
    /// one terminal state), and no server logged a job's end twice.
    pub fn assert_each_succeeded_once(&self, statuses: &[Value], ids: &[String]) {
        assert_eq!(statuses.len(), ids.len());
        let failed: Vec<&Value> = statuses
            .iter()
            .filter(|s| s["state"] != "succeeded")
            .collect();
        assert!(failed.is_empty(), "jobs that did not succeed: {failed:?}");
        assert_eq!(
            self.psql(
                "SELECT count(*) || ',' || count(*) FILTER (WHERE state = 'succeeded') FROM jobs"
            ),
            format!("{0},{0}", ids.len())
        );
        let mut ends: HashMap<String, usize> = HashMap::new();
        for server in &self.servers {
            for line in server.logs().lines().filter(|l| l.contains("job ended")) {
                if let Some(id) = line
                    .split("job=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                {
                    *ends.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
        let twice: Vec<_> = ends.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "jobs that ended twice: {twice:?}");
    }
}

/// The leader `/api/nodes` of `node` names, with its epoch.
pub fn leader_seen_by(node: &Node) -> Option<(String, u64)> {
    let (status, body) = http_get(&node.http_url("/api/nodes"))?;
    if status != 200 {
        return None;
    }
    let body: Value = serde_json::from_str(&body).ok()?;
    let leader = &body["result"]["leader"];
    Some((
        leader["name"].as_str()?.to_owned(),
        leader["epoch"].as_u64()?,
    ))
}

/// Waits until `node` says `leader` leads; returns the epoch.
pub fn wait_for_leader(node: &Node, leader: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((name, epoch)) = leader_seen_by(node)
            && name == leader
        {
            return epoch;
        }
        assert!(
            Instant::now() < deadline,
            "{} does not see {leader} lead after {WAIT:?}:\n{}",
            node.name,
            node.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `marie_leader{node="…"}` on `node`'s `/metrics`.
pub fn leader_gauge(node: &Node) -> Option<u64> {
    let (_, body) = http_get(&node.http_url("/metrics"))?;
    let prefix = format!("marie_leader{{node=\"{}\"}} ", node.name);
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// Whether `node`'s `/metrics` exports any series of `metric`.
pub fn exports(node: &Node, metric: &str) -> bool {
    let Some((_, body)) = http_get(&node.http_url("/metrics")) else {
        return false;
    };
    body.lines().any(|line| {
        line.strip_prefix(metric)
            .is_some_and(|rest| rest.starts_with('{'))
    })
}
