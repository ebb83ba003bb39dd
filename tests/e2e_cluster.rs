//! Multi-node end to end: real `marie node` processes on 127.0.0.1 joined over
//! ractor_cluster, with nodes killed (SIGKILL), hung (SIGSTOP) and restarted.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Node};
use common::{stderr, stdout};
use nix::sys::signal::Signal;
use serde_json::Value;

const POOLS: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 4
handlers = ["echo", "sleep"]

[[executor.pools]]
name = "extract"
replicas = 1
slots = 4
handlers = ["echo", "pdf-text"]
"#;

fn executor(cluster: &Cluster, name: &str, pool: &str) -> Node {
    cluster.start(name, &["node", "--role", "executor", "--pool", pool], &[])
}

fn server(cluster: &Cluster) -> Node {
    cluster.start("server", &["node", "--role", "server"], &[])
}

/// Bound of every wait for a state: generous, for a machine busy with other work.
const WAIT: Duration = Duration::from_secs(60);

/// Waits for every job through `port`; returns their final statuses.
fn wait_all(cluster: &Cluster, port: u16, ids: &[String]) -> Vec<Value> {
    let mut args = vec!["wait", "--json", "--timeout-secs", "120"];
    args.extend(ids.iter().map(String::as_str));
    let out = cluster.cli(port, &args);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("status JSON"))
        .collect()
}

/// How many times the server recorded each job's end, over all its runs.
fn ends(server: &Node) -> HashMap<String, usize> {
    let mut ends = HashMap::new();
    for line in server.logs().lines().filter(|l| l.contains("job ended")) {
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

/// Every job succeeded, and none ended twice. The server logs "job ended" once the
/// store took the end, which it does once per job; when the server was SIGKILLed, the
/// kill can fall between a commit and its log line, so a job may have no line then.
fn assert_each_succeeded_once(statuses: &[Value], ids: &[String], server: &Node) {
    assert_eq!(statuses.len(), ids.len());
    let failed: Vec<&Value> = statuses
        .iter()
        .filter(|s| s["state"] != "succeeded")
        .collect();
    assert!(failed.is_empty(), "jobs that did not succeed: {failed:?}");
    let ends = ends(server);
    let server_was_killed = server.starts() > 1;
    for id in ids {
        let count = ends.get(id).copied().unwrap_or(0);
        let once = count == 1 || (count == 0 && server_was_killed);
        assert!(once, "job {id} ended {count} times");
    }
}

#[test]
fn jobs_through_either_gateway_complete_and_capacity_sums_the_live_executors() {
    let cluster = Cluster::new(POOLS);
    let server = server(&cluster);
    let gateways = [
        cluster.start("gw1", &["node", "--role", "gateway"], &[]),
        cluster.start("gw2", &["node", "--role", "gateway"], &[]),
    ];
    let _executors = [
        executor(&cluster, "ex1", "cpu-general"),
        executor(&cluster, "ex2", "cpu-general"),
        executor(&cluster, "ex3", "extract"),
    ];
    for gateway in &gateways {
        cluster.wait_for_capacity(gateway.port, "cpu-general", 8, WAIT);
        cluster.wait_for_capacity(gateway.port, "extract", 4, WAIT);
    }
    let mut ids = Vec::new();
    for gateway in &gateways {
        let accepted = cluster.submit_many(gateway.port, "cpu-general", "echo", b"hello", 100);
        ids.extend(accepted.clone());
        let statuses = wait_all(&cluster, gateway.port, &accepted);
        assert!(
            statuses.iter().all(|s| s["state"] == "succeeded"),
            "{statuses:?}"
        );
        let executors: std::collections::HashSet<&str> = statuses
            .iter()
            .filter_map(|s| s["executor"].as_str())
            .collect();
        assert_eq!(
            executors.len(),
            2,
            "work spread over both cpu-general executors: {executors:?}"
        );
    }
    let nodes: Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{}/api/nodes", server.http_port))
            .and_then(|r| r.json())
            .expect("GET /api/nodes");
    let mut up: Vec<&str> = nodes["result"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["status"] == "up")
        .filter_map(|n| n["name"].as_str())
        .collect();
    up.sort();
    assert_eq!(
        up,
        ["ex1", "ex2", "ex3", "gw1", "gw2", "server"],
        "the full mesh as the server sees it"
    );
    let extract = cluster.submit_many(gateways[1].port, "extract", "echo", b"x", 10);
    let statuses = wait_all(&cluster, gateways[0].port, &extract);
    assert!(
        statuses
            .iter()
            .all(|s| s["state"] == "succeeded" && s["executor"] == "ex3-extract-1")
    );
    ids.extend(extract);
    assert_each_succeeded_once(&wait_all(&cluster, server.port, &ids), &ids, &server);
}

#[test]
fn sigkill_of_an_executor_node_mid_run_loses_no_job_and_runs_none_twice() {
    let cluster = Cluster::new(POOLS);
    let server = server(&cluster);
    let mut ex1 = executor(&cluster, "ex1", "cpu-general");
    let _ex2 = executor(&cluster, "ex2", "cpu-general");
    cluster.wait_for_capacity(server.port, "cpu-general", 8, WAIT);
    let ids = cluster.submit_many(server.port, "cpu-general", "sleep", b"20", 2000);
    let deadline = Instant::now() + WAIT;
    while ends(&server).len() < 200 {
        assert!(Instant::now() < deadline, "jobs are not running");
        std::thread::sleep(Duration::from_millis(50));
    }
    ex1.kill();
    cluster.wait_for_capacity(server.port, "cpu-general", 4, WAIT);
    // Lost because its connection closed, not because it fell silent past a deadline.
    assert!(
        server
            .logs()
            .contains("executor lost: its node left the cluster executor=ex1-cpu-general-1"),
        "{}",
        server.logs()
    );
    let statuses = wait_all(&cluster, server.port, &ids);
    assert_each_succeeded_once(&statuses, &ids, &server);
    assert!(
        statuses.iter().any(|s| s["attempt"] == 2),
        "no job was in flight on the killed node"
    );
}

#[test]
fn a_hung_executor_node_is_declared_down_its_late_answers_are_ignored_and_it_comes_back() {
    let cluster = Cluster::new(POOLS);
    let server = server(&cluster);
    let ex1 = executor(&cluster, "ex1", "cpu-general");
    let _ex2 = executor(&cluster, "ex2", "cpu-general");
    cluster.wait_for_capacity(server.port, "cpu-general", 8, WAIT);
    // 8 jobs of 5 s fill both nodes' slots; the store says when all of them run.
    let run = Duration::from_secs(5);
    let ids = cluster.submit_many(server.port, "cpu-general", "sleep", b"5000", 8);
    cluster.wait_until_all_ran(&format!("127.0.0.1:{}", server.port), &ids, WAIT);
    ex1.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    cluster.wait_for_capacity(server.port, "cpu-general", 4, WAIT);
    // Lost because membership found it silent past the deadline (3 s), not because the
    // CapacityManager's executor timeout (10 s) ran out: the log says which, in order.
    let logs = server.logs();
    let unreachable = logs.find("node unreachable: connected but silent past the deadline");
    let lost = logs.find("executor lost: its node left the cluster executor=ex1-cpu-general-1");
    assert!(
        matches!((unreachable, lost), (Some(u), Some(l)) if u < l),
        "ex1 was not declared down for its silence:\n{logs}\n=== ex1\n{}",
        ex1.logs()
    );
    // Let ex1's runs reach their end while it is cut off, then wake it: its answers are
    // stale.
    std::thread::sleep(run.saturating_sub(stopped.elapsed()) + Duration::from_millis(500));
    ex1.signal(Signal::SIGCONT);
    cluster.wait_for_capacity(server.port, "cpu-general", 8, WAIT);
    let statuses = wait_all(&cluster, server.port, &ids);
    assert_each_succeeded_once(&statuses, &ids, &server);
    let rerun: Vec<&Value> = statuses.iter().filter(|s| s["attempt"] == 2).collect();
    assert_eq!(
        rerun.len(),
        4,
        "the 4 jobs of the hung node ran again elsewhere"
    );
    assert!(rerun.iter().all(|s| s["executor"] == "ex2-cpu-general-1"));
    // It takes new work again.
    let more = cluster.submit_many(server.port, "cpu-general", "sleep", b"500", 8);
    let statuses = wait_all(&cluster, server.port, &more);
    assert!(
        statuses
            .iter()
            .any(|s| s["executor"] == "ex1-cpu-general-1"),
        "{statuses:?}"
    );
}

#[test]
fn restarting_the_server_node_brings_executors_back_and_completes_every_accepted_job() {
    let cluster = Cluster::new(POOLS);
    let mut server = server(&cluster);
    let _ex1 = executor(&cluster, "ex1", "cpu-general");
    cluster.wait_for_capacity(server.port, "cpu-general", 4, WAIT);
    let ids = cluster.submit_many(server.port, "cpu-general", "sleep", b"100", 200);
    // Killed once jobs are running and some have ended.
    let deadline = Instant::now() + WAIT;
    while ends(&server).len() < 20 {
        assert!(Instant::now() < deadline, "jobs are not running");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    server.restart();
    cluster.wait_for_capacity(server.port, "cpu-general", 4, WAIT);
    let statuses = wait_all(&cluster, server.port, &ids);
    assert_each_succeeded_once(&statuses, &ids, &server);
}

#[test]
fn a_wrong_cookie_is_refused_and_logged_with_the_peer_address() {
    let cluster = Cluster::new(POOLS);
    let server = server(&cluster);
    let wrong = cluster.start(
        "intruder",
        &["node", "--role", "executor", "--pool", "cpu-general"],
        &[("MARIE_CLUSTER__COOKIE", "not-the-cookie")],
    );
    let deadline = Instant::now() + WAIT;
    while !server
        .logs()
        .contains("closed before it authenticated: a wrong cookie")
    {
        assert!(
            Instant::now() < deadline,
            "the refusal was not logged:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        cluster.pool_capacity(server.port, "cpu-general"),
        0,
        "the intruder joined"
    );
    assert!(server.logs().contains("peer=127.0.0.1:"));
    drop(wrong);
}

/// A CA and one certificate for 127.0.0.1 signed by it, written as PEM files in `dir`.
fn certificates(dir: &std::path::Path) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node_key = rcgen::KeyPair::generate().expect("node key");
    let node_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("node params");
    let node_cert = node_params
        .signed_by(&node_key, &issuer)
        .expect("node cert");
    let path = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path.display().to_string()
    };
    (
        path("ca.pem", ca_cert.pem()),
        path("node.pem", node_cert.pem()),
        path("node.key", node_key.serialize_pem()),
    )
}

#[test]
fn mutual_tls_runs_jobs_refuses_clients_without_a_certificate_and_idle_connections_block_nobody() {
    let pem_dir = tempfile::tempdir().expect("pem dir");
    let (ca, cert, key) = certificates(pem_dir.path());
    let tls =
        format!("{POOLS}\n[cluster.tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n");
    let cluster = Cluster::new(&tls);
    let server = server(&cluster);
    // An idle TCP connection to the TLS port: it never starts a handshake.
    let idle = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let _ex1 = executor(&cluster, "ex1", "cpu-general");
    cluster.wait_for_capacity(server.port, "cpu-general", 4, WAIT);
    let ids = cluster.submit_many(server.port, "cpu-general", "echo", b"secret", 20);
    assert_each_succeeded_once(&wait_all(&cluster, server.port, &ids), &ids, &server);
    drop(idle);

    // A client that trusts the CA but has no certificate of its own is refused.
    let no_cert = pem_dir.path().join("client.toml");
    std::fs::write(
        &no_cert,
        format!(
            "[cluster]\ncookie = \"{}\"\n[cluster.tls]\nca = \"{ca}\"\n",
            common::cluster::COOKIE
        ),
    )
    .expect("client config");
    let out = std::process::Command::new(common::marie_bin())
        .args([
            "capacity",
            "--connect",
            &format!("127.0.0.1:{}", server.port),
        ])
        .env("MARIE_CONFIG", &no_cert)
        .output()
        .expect("run the CLI");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refused the handshake"),
        "{}",
        stderr(&out)
    );
    let deadline = Instant::now() + WAIT;
    while !server.logs().contains("TLS handshake failed") {
        assert!(
            Instant::now() < deadline,
            "the refusal was not logged:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Executor nodes that join at once, each dialling the server while the server dials
/// them (they are its seeds), round after round (each round restarts them, so the
/// server also redials them as nodes it lost): two sessions to one node are opened at
/// the same moment and ractor_cluster closes one as a duplicate. No executor is taken
/// for lost and no job runs twice.
#[test]
fn executor_nodes_joining_at_once_while_the_server_dials_them_are_never_taken_for_lost() {
    const EXECUTORS: usize = 4;
    const ROUNDS: usize = 6;
    let cluster = Cluster::new(
        "[[executor.pools]]\nname = \"joining\"\nreplicas = 1\nslots = 2\nhandlers = [\"sleep\"]\n",
    );
    let ports: Vec<u16> = (0..EXECUTORS).map(|_| common::free_port()).collect();
    let seeds: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    let seeds = format!("[{}]", seeds.join(", "));
    let server = cluster.start(
        "server",
        &["node", "--role", "server"],
        &[("MARIE_CLUSTER__SEEDS", &seeds)],
    );
    let mut executors: Vec<Node> = Vec::new();
    let mut all = Vec::new();
    for round in 0..ROUNDS {
        // Queued before the executors join, so each is leased a job as soon as it has.
        let ids = cluster.submit_many(server.port, "joining", "sleep", b"300", 16);
        std::thread::scope(|scope| {
            if round == 0 {
                let started: Vec<_> = ports
                    .iter()
                    .enumerate()
                    .map(|(n, port)| {
                        let cluster = &cluster;
                        scope.spawn(move || {
                            let args = ["node", "--role", "executor", "--pool", "joining"];
                            cluster.start_on(*port, &format!("ex{n}"), &args, &[])
                        })
                    })
                    .collect();
                executors = started
                    .into_iter()
                    .map(|s| s.join().expect("an executor node started"))
                    .collect();
            } else {
                for node in &mut executors {
                    scope.spawn(move || node.restart());
                }
            }
        });
        let statuses = wait_all(&cluster, server.port, &ids);
        assert_each_succeeded_once(&statuses, &ids, &server);
        let rerun: Vec<&Value> = statuses.iter().filter(|s| s["attempt"] != 1).collect();
        assert!(
            rerun.is_empty(),
            "round {round}: jobs ran more than once: {rerun:?}\n{}",
            server.logs()
        );
        // Stopped politely: each drains and leaves; none is lost.
        for node in &executors {
            node.signal(Signal::SIGTERM);
        }
        for node in &mut executors {
            assert!(
                node.wait_exit(WAIT),
                "{} did not stop:\n{}",
                node.name,
                node.logs()
            );
        }
        cluster.wait_for_capacity(server.port, "joining", 0, WAIT);
        all.extend(ids);
    }
    let logs = server.logs();
    let lost: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("executor lost") || l.contains("declaring it lost"))
        .collect();
    assert!(
        lost.is_empty(),
        "executors taken for lost:\n{}",
        lost.join("\n")
    );
    assert_eq!(ends(&server).len(), all.len());
}
