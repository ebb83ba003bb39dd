//! End-to-end on the Postgres store: a real `marie up` over a throwaway Postgres server
//! runs jobs, keeps them across a restart of the node, never logs the password, and
//! refuses to start with a wrong one; a Postgres stopped mid-run refuses submits with a
//! clear answer and loses nothing; a gateway node writes the store itself, so it takes
//! jobs while the server node is down, and they run once a server is back.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, Node};
use common::{Marie, stderr, stdout, write_files};
use marie_test_postgres::{PASSWORD, TestPostgres};
use serde_json::Value;

/// Bound of every wait for a state: generous, for a machine busy with other work.
const WAIT: Duration = Duration::from_secs(120);

const SLEEP_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 8
handlers = ["echo", "sleep"]
"#;

const ECHO_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 8
handlers = ["echo"]
"#;

const JOBS: usize = 200;

fn succeeded(marie: &Marie) -> Vec<Value> {
    let lines =
        marie.cli_json_lines(&["jobs", "--state", "succeeded", "--limit", "1000", "--json"]);
    lines[0]["jobs"].as_array().cloned().unwrap_or_default()
}

#[test]
fn marie_up_on_postgres_runs_jobs_and_keeps_them_across_a_restart() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let url = postgres.url();
    let mut marie = Marie::start_with(
        Some(ECHO_POOL),
        &[
            ("MARIE_STORE__BACKEND", "postgres"),
            ("MARIE_STORE__URL", &url),
        ],
    );
    let files = write_files(
        &marie.dir().join("in"),
        (0..JOBS).map(|i| format!("document {i}").into_bytes()),
    );
    let mut args = vec![
        "submit",
        "--pool",
        "cpu-general",
        "--handler",
        "echo",
        "--wait",
        "--json",
    ];
    args.extend(files.iter().map(String::as_str));
    let lines = marie.cli_json_lines(&args);
    assert_eq!(lines.len(), JOBS);
    for line in &lines {
        assert_eq!(line["state"], "succeeded", "{line}");
    }
    // The jobs are rows of the database, not of a file in the data dir.
    let stored = postgres
        .psql("SELECT count(*) FROM jobs WHERE state = 'succeeded' AND output IS NOT NULL")
        .expect("psql");
    assert_eq!(stored, JOBS.to_string());
    assert!(!marie.dir().join("data/marie.db").exists());

    marie.kill();
    std::fs::remove_dir_all(marie.dir().join("data")).expect("remove the data dir");
    marie.restart();
    assert_eq!(succeeded(&marie).len(), JOBS);
    let id = lines[0]["id"].as_str().expect("id");
    let status: Value =
        serde_json::from_str(&common::stdout(&marie.cli(&["status", "--json", id])))
            .expect("status JSON");
    assert_eq!(status["state"], "succeeded", "{status}");

    let logs = marie.all_logs();
    assert!(
        logs.contains(&format!(
            "postgres://marie:***@127.0.0.1:{}/marie",
            postgres.port()
        )),
        "the store's URL is not logged:\n{logs}"
    );
    assert!(
        !logs.contains(PASSWORD),
        "the password is in the logs:\n{logs}"
    );
}

#[test]
fn marie_up_refuses_a_wrong_password_naming_store_url_with_the_password_masked() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let wrong = "wr0ng-s3cret";
    let config = format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{}\"\n{ECHO_POOL}",
        postgres.url_with_password(wrong)
    );
    let (code, stderr) = common::run_with_config(&config, &["up"]);
    assert_eq!(code, Some(2), "{stderr}");
    for part in [
        "store.url",
        &format!("postgres://marie:***@127.0.0.1:{}/marie", postgres.port()),
        "password authentication failed",
    ] {
        assert!(stderr.contains(part), "{part:?} is not in:\n{stderr}");
    }
    assert!(!stderr.contains(wrong), "{stderr}");
}

/// Waits for every job through `port`; asserts each succeeded.
fn wait_succeeded(cluster: &Cluster, port: u16, ids: &[String]) {
    let mut args = vec!["wait", "--json", "--timeout-secs", "120"];
    args.extend(ids.iter().map(String::as_str));
    let out = cluster.cli(port, &args);
    let states: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("status JSON"))
        .collect();
    assert_eq!(states.len(), ids.len(), "{}", stderr(&out));
    for state in &states {
        assert_eq!(state["state"], "succeeded", "{state}");
    }
}

/// `SELECT count(*)` of the jobs among `ids` that match `condition`.
fn count(postgres: &TestPostgres, ids: &[String], condition: &str) -> usize {
    let list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    postgres
        .psql(&format!(
            "SELECT count(*) FROM jobs WHERE id IN ({list}) AND {condition}"
        ))
        .expect("psql")
        .parse()
        .expect("a count")
}

/// Runs the server node's CapacityManager leased, from its `/metrics` (each run of a job
/// is one observation of its wait in the queue).
fn runs_started(node: &Node) -> u64 {
    let (_, text) = common::http_get(&node.http_url("/metrics")).expect("GET /metrics");
    text.lines()
        .filter(|l| l.starts_with("marie_job_queue_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until the server node's CapacityManager has leased `runs` runs.
fn wait_for_runs(node: &Node, runs: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = runs_started(node);
        if now == runs {
            return;
        }
        assert!(now < runs, "{now} runs leased, more than the {runs} jobs");
        assert!(Instant::now() < deadline, "{now} of {runs} runs leased");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gateway_node_commits_to_postgres_itself_and_takes_jobs_while_the_server_node_is_down() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let cluster = Cluster::new(&format!(
        "[store]\nbackend = \"postgres\"\nurl = \"{}\"\n{SLEEP_POOL}",
        postgres.url()
    ));
    let mut server = cluster.start("server", &["node", "--role", "server"], &[]);
    let gateway = cluster.start("gateway", &["node", "--role", "gateway"], &[]);
    let _executor = cluster.start(
        "executor",
        &["node", "--role", "executor", "--pool", "cpu-general"],
        &[],
    );
    cluster.wait_for_capacity(gateway.port, "cpu-general", 8, WAIT);

    // Through the gateway node: every job committed once, run once.
    let ids = cluster.submit_sleeps(gateway.port, 20, 100);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    wait_succeeded(&cluster, gateway.port, &ids);
    assert_eq!(count(&postgres, &ids, "state = 'succeeded'"), ids.len());
    wait_for_runs(&server, ids.len() as u64);

    // The server node dies: the gateway node still commits jobs to Postgres.
    server.kill();
    let waiting = cluster.submit_sleeps(gateway.port, 20, 50);
    assert_eq!(
        count(&postgres, &waiting, "state = 'queued'"),
        waiting.len()
    );

    // A server is back: the jobs that waited run, once each.
    server.restart();
    wait_succeeded(&cluster, gateway.port, &waiting);
    assert_eq!(count(&postgres, &waiting, "attempt = 1"), waiting.len());
    wait_for_runs(&server, waiting.len() as u64);
    assert!(
        !gateway.logs().contains(PASSWORD) && !server.logs().contains(PASSWORD),
        "the password is in a log"
    );
}

#[test]
fn postgres_stopped_mid_run_refuses_submits_with_a_clear_answer_and_loses_no_accepted_job() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let url = postgres.url();
    let marie = Marie::start_with(
        Some(SLEEP_POOL),
        &[
            ("MARIE_STORE__BACKEND", "postgres"),
            ("MARIE_STORE__URL", &url),
        ],
    );
    let http = reqwest::blocking::Client::new();
    let submit = || {
        http.post(marie.http_url("/api/jobs?pool=cpu-general&handler=sleep"))
            .body("200")
            .send()
            .expect("POST /api/jobs")
    };
    let mut accepted = Vec::new();
    for _ in 0..300 {
        let response = submit();
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().expect("JSON");
        accepted.push(body["result"]["id"].as_str().expect("an id").to_owned());
    }
    let deadline = Instant::now() + WAIT;
    while count(&postgres, &accepted, "state = 'succeeded'") < 10 {
        assert!(Instant::now() < deadline, "jobs are not running");
        std::thread::sleep(Duration::from_millis(50));
    }

    postgres.stop().expect("stop Postgres");
    let stopped = Instant::now();
    let mut refused = 0;
    while stopped.elapsed() < Duration::from_secs(5) {
        let response = submit();
        let status = response.status().as_u16();
        let body: Value = response.json().expect("JSON");
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
        let message = body["error"]["message"].as_str().expect("a message");
        assert!(message.contains("Postgres job store"), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(body.get("result").is_none(), "{body}");
        refused += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(refused > 0);
    postgres.start_again().expect("start Postgres again");

    let deadline = Instant::now() + WAIT;
    loop {
        let done = count(&postgres, &accepted, "state = 'succeeded'");
        if done == accepted.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} accepted jobs succeeded:\n{}",
            accepted.len(),
            marie.all_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing refused was committed, and submits pass again.
    let stored: usize = postgres
        .psql("SELECT count(*) FROM jobs")
        .expect("psql")
        .parse()
        .expect("a count");
    assert_eq!(stored, accepted.len());
    let deadline = Instant::now() + WAIT;
    while submit().status().as_u16() != 202 {
        assert!(Instant::now() < deadline, "submits are still refused");
        std::thread::sleep(Duration::from_millis(200));
    }
}
