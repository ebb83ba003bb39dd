//! Several `server` nodes on one throwaway Postgres, one leader fenced by its epoch:
//! real `marie node` processes. The leader SIGKILLed in the middle of 2,000 jobs: the
//! standby leads, runs in flight on the surviving executors keep their leases, and every
//! job succeeds once. The leader SIGSTOPped past its lease: it
//! finds itself deposed, nothing it writes after the takeover lands, and restarted it
//! stands by. Two servers started together on an empty database: one migration, one
//! leader; SIGTERM hands the lease over without waiting for it to expire.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Node};
use common::{free_port, http_get, stderr, stdout, write_files};
use marie_test_postgres::TestPostgres;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Every node's configuration (and the CLI's, which checks it too): the Postgres store
/// at `url`, the default lease (renewed every second, 3 s to live), and a pool of sleep
/// jobs.
fn config(url: &str) -> String {
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
const TTL: Duration = Duration::from_secs(3);
/// A generous bound on anything a busy machine may take.
const WAIT: Duration = Duration::from_secs(120);

/// Two server nodes, two executor nodes and Postgres.
struct Setup {
    postgres: TestPostgres,
    cluster: Cluster,
    servers: Vec<Node>,
    _executors: Vec<Node>,
}

/// The environment of every node: both servers as seeds.
fn node_env(ports: [u16; 2]) -> Vec<(String, String)> {
    vec![(
        "MARIE_CLUSTER__SEEDS".into(),
        format!("[\"127.0.0.1:{}\", \"127.0.0.1:{}\"]", ports[0], ports[1]),
    )]
}

fn start_server(cluster: &Cluster, name: &str, port: u16, env: &[(String, String)]) -> Node {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cluster.start_on(port, name, &["node", "--role", "server"], &env)
}

impl Setup {
    /// `s1` leads (started first), `s2` stands by; both see 100 slots. `extra` is more
    /// configuration.
    fn start(extra: &str) -> Setup {
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

    fn psql(&self, sql: &str) -> String {
        self.postgres.psql(sql).expect("psql")
    }

    fn succeeded(&self) -> usize {
        self.psql("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
            .parse()
            .expect("a count")
    }

    /// Submits `n` sleep jobs of `ms` through `server`; returns the accepted ids.
    fn submit(&self, server: &Node, ms: u64, n: usize) -> Vec<String> {
        let dir = tempfile::tempdir().expect("inputs");
        let files = write_files(dir.path(), (0..n).map(|_| ms.to_string().into_bytes()));
        let mut args = vec![
            "submit",
            "--pool",
            "cpu-general",
            "--handler",
            "sleep",
            "--json",
        ];
        args.extend(files.iter().map(String::as_str));
        let out = self.cluster.cli(server.port, &args);
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

    /// Waits for every job through `server`; returns their final statuses.
    fn wait_all(&self, server: &Node, ids: &[String]) -> Vec<Value> {
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
    fn assert_each_succeeded_once(&self, statuses: &[Value], ids: &[String]) {
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
fn leader_seen_by(node: &Node) -> Option<(String, u64)> {
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
fn wait_for_leader(node: &Node, leader: &str) -> u64 {
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
fn leader_gauge(node: &Node) -> Option<u64> {
    let (_, body) = http_get(&node.http_url("/metrics"))?;
    let prefix = format!("marie_leader{{node=\"{}\"}} ", node.name);
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn sigkill_of_the_leader_mid_run_hands_over_to_the_standby_and_every_job_succeeds_once() {
    let mut setup = Setup::start("");
    assert_eq!(leader_gauge(&setup.servers[0]), Some(1));
    assert_eq!(leader_gauge(&setup.servers[1]), Some(0));
    // Submitted through the standby's gateway: any node accepts work. Long jobs first,
    // whose runs outlast the failover, then 10 s of short work on the remaining slots,
    // so that the kill lands while jobs run.
    let long = setup.submit(&setup.servers[1], 25_000, 20);
    assert_eq!(long.len(), 20);
    let short = setup.submit(&setup.servers[1], 500, 2000);
    assert_eq!(short.len(), 2000);
    let ids: Vec<String> = long.iter().chain(&short).cloned().collect();
    let deadline = Instant::now() + WAIT;
    while setup.succeeded() < 100 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    setup.servers[0].kill();
    let killed = Instant::now();
    let epoch = wait_for_leader(&setup.servers[1], "s2");
    let took = killed.elapsed();
    println!(
        "failover: s2 leads (epoch {epoch}) {:.2} s after the leader's SIGKILL (lease TTL {:.1} s)",
        took.as_secs_f64(),
        TTL.as_secs_f64()
    );
    assert_eq!(epoch, 2);
    assert!(
        setup.servers[1]
            .logs()
            .contains("reason=the lease of s1 expired"),
        "{}",
        setup.servers[1].logs()
    );

    let statuses = setup.wait_all(&setup.servers[1], &ids);
    setup.assert_each_succeeded_once(&statuses, &ids);
    // The executors survived: the long runs, in flight through the failover, were
    // reported to the new leader and kept their leases. Only short runs that ended in
    // the gap (their completion went to the dead leader) ran again.
    let attempt = |id: &String| {
        statuses
            .iter()
            .find(|s| s["id"] == id.as_str())
            .map(|s| s["attempt"].clone())
    };
    for id in &long {
        assert_eq!(
            attempt(id),
            Some(Value::from(1)),
            "a run in flight on a surviving executor ran again"
        );
    }
    assert!(
        short.iter().any(|id| attempt(id) == Some(Value::from(2))),
        "no run ended during the failover, so the test proved nothing"
    );
    // The new leader ended jobs, under its own epoch.
    let by_new: u64 = setup
        .psql("SELECT count(*) FROM jobs WHERE leader_epoch = 2")
        .parse()
        .expect("a count");
    assert!(by_new > 0);
    assert_eq!(leader_gauge(&setup.servers[1]), Some(1));
}

#[test]
fn a_leader_stopped_past_its_lease_is_deposed_writes_nothing_after_the_takeover_and_stands_by() {
    // Leases of 2 s: when the stopped leader wakes up, every lease it granted has
    // expired on its clock, and it would re-queue each of those jobs (which the new
    // leader runs) were its writes not fenced.
    let mut setup = Setup::start(
        "[scheduler]\nheartbeat_ms = 500\nlease_ttl_ms = 2000\nexecutor_timeout_ms = 2000\n",
    );
    // 4 s jobs: runs are in flight through the stop.
    let ids = setup.submit(&setup.servers[1], 4000, 400);
    let deadline = Instant::now() + WAIT;
    while setup.succeeded() < 100 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    setup.servers[0].signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    // Jobs in flight at the stop: waking with their leases expired on its clock, the
    // deposed leader would re-queue them were its writes not fenced. Their executors
    // report them to the new leader, which keeps them (or re-queues those that ended
    // in the gap).
    let in_flight = setup.psql("SELECT id FROM jobs WHERE state = 'running'");
    let in_flight: Vec<&str> = in_flight.lines().collect();
    assert!(
        !in_flight.is_empty(),
        "no job was in flight at the stop, so the test proved nothing"
    );
    let epoch = wait_for_leader(&setup.servers[1], "s2");
    println!(
        "failover: s2 leads (epoch {epoch}) {:.2} s after the leader's SIGSTOP",
        stopped.elapsed().as_secs_f64()
    );
    let takeover_ms = setup.psql(
        "SELECT (extract(epoch FROM acquired_at) * 1000)::bigint FROM marie_leader WHERE epoch = 2",
    );
    let takeover_ms: u64 = takeover_ms.parse().expect("the takeover's time");
    let stop_for = (2 * TTL).saturating_sub(stopped.elapsed());
    std::thread::sleep(stop_for);
    setup.servers[0].signal(Signal::SIGCONT);

    // It finds itself deposed and exits, for its supervisor to start it again.
    assert!(
        !setup.servers[0].wait_exit(WAIT),
        "the deposed leader exited cleanly"
    );
    let logs = setup.servers[0].logs();
    assert!(logs.contains("leader: lost the lease"), "{logs}");

    // Nothing the old leader wrote after the takeover is in the store: no row carries
    // its epoch with a change made after the new leader acquired the lease (both
    // stamped by this machine's clock).
    let late = setup.psql(&format!(
        "SELECT count(*) FROM jobs WHERE leader_epoch = 1 AND updated_at_ms > {takeover_ms}"
    ));
    assert_eq!(
        late, "0",
        "the deposed leader's writes landed after the takeover"
    );
    let statuses = setup.wait_all(&setup.servers[1], &ids);
    setup.assert_each_succeeded_once(&statuses, &ids);
    let kept = statuses
        .iter()
        .filter(|s| in_flight.iter().any(|id| s["id"] == *id) && s["attempt"] == 1)
        .count();
    println!(
        "{kept} of the {} jobs in flight at the stop kept their first run",
        in_flight.len()
    );

    // Started again, it stands by: the lease stays with s2.
    setup.servers[0].restart();
    assert_eq!(wait_for_leader(&setup.servers[0], "s2"), epoch);
    assert_eq!(leader_gauge(&setup.servers[0]), Some(0));
    assert_eq!(leader_gauge(&setup.servers[1]), Some(1));
}

#[test]
fn two_servers_started_together_on_an_empty_database_migrate_once_and_elect_one_leader() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let cluster = Cluster::new(&config(&postgres.url()));
    let ports = [cluster.server_port, free_port()];
    let env = node_env(ports);
    // Each node opens its store as soon as its cluster port listens: together.
    let mut servers = [
        start_server(&cluster, "s1", ports[0], &env),
        start_server(&cluster, "s2", ports[1], &env),
    ];
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        let seen: Vec<_> = servers.iter().map(leader_seen_by).collect();
        if let [Some(a), Some(b)] = &seen[..]
            && a == b
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no leader agreed on: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(leader.1, 1, "more than one acquisition: {leader:?}");
    let versions = postgres
        .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM marie_schema")
        .expect("psql");
    assert_eq!(versions, "1,2");
    let migrations: usize = servers
        .iter()
        .map(|s| s.logs().matches("applying schema migration").count())
        .sum();
    assert_eq!(migrations, 2, "each version applied once, by one node");
    let gauges: Vec<_> = servers.iter().map(leader_gauge).collect();
    assert!(
        gauges == [Some(1), Some(0)] || gauges == [Some(0), Some(1)],
        "{gauges:?}"
    );

    // SIGTERM: the leader releases the lease; the other takes it without waiting for it
    // to expire (it says why).
    let (leading, standing) = if leader.0 == "s1" { (0, 1) } else { (1, 0) };
    servers[leading].signal(Signal::SIGTERM);
    assert!(
        servers[leading].wait_exit(WAIT),
        "the leader did not stop cleanly"
    );
    let successor = servers[standing].name.clone();
    assert_eq!(wait_for_leader(&servers[standing], &successor), 2);
    let logs = servers[standing].logs();
    assert!(
        logs.contains(&format!("reason={} released the lease", leader.0)),
        "{logs}"
    );
}
