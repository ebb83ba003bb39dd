//! Autoscaling end to end: the Supervisor of a real `marie up` scales pools with the
//! `local` backend (executor actors) and the `process` backend (executor processes).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Marie, stderr, stdout, write_files};
use serde_json::Value;

fn config(backend: &str) -> String {
    format!(
        r#"
[supervisor]
backend = "{backend}"
tick_ms = 100

[[executor.pools]]
name = "burst"
slots = 4
handlers = ["sleep", "echo"]
[executor.pools.autoscale]
min = 1
max = 5
scale_down_window_secs = 2

[[executor.pools]]
name = "zero"
slots = 2
handlers = ["echo"]
[executor.pools.autoscale]
min = 0
max = 2
scale_down_window_secs = 1
[executor.pools.autoscale.scale_to_zero]
enabled = true
idle_delay_secs = 1
last_executor_delay_secs = 2
"#
    )
}

/// (capacity, target) of `pool`.
fn slots(marie: &Marie, pool: &str) -> (u64, u64) {
    let out = marie.cli(&["capacity"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("capacity JSON");
    let entry = report["result"]["slots"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == pool).cloned())
        .unwrap_or_default();
    (
        entry["capacity"].as_u64().unwrap_or(0),
        entry["target"].as_u64().unwrap_or(0),
    )
}

fn wait_for_capacity(marie: &Marie, pool: &str, capacity: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (now, _) = slots(marie, pool);
        if now == capacity {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "pool {pool}: capacity {now}, want {capacity} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn ends(marie: &Marie) -> HashMap<String, usize> {
    let mut ends = HashMap::new();
    for line in marie.all_logs().lines().filter(|l| l.contains("job ended")) {
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

fn burst_scales_up_to_max_completes_every_job_once_and_returns_to_min(backend: &str) {
    let marie = Marie::start_with(Some(&config(backend)), &[]);
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(20));
    let files = write_files(&marie.dir().join("in"), (0..2000).map(|_| b"30".to_vec()));
    let mut args = vec!["submit", "--pool", "burst", "--handler", "sleep", "--json"];
    args.extend(files.iter().map(String::as_str));
    let submitted = Instant::now();
    let out = marie.cli(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let limit = if backend == "local" {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(15)
    };
    let after_submit = wait_for_capacity(&marie, "burst", 20, limit + submitted.elapsed());
    assert_eq!(
        slots(&marie, "burst").1,
        20,
        "target follows the Supervisor"
    );
    eprintln!("{backend}: at max {after_submit:?} after the burst was submitted");

    let mut wait = vec!["wait", "--json", "--timeout-secs", "120"];
    wait.extend(ids.iter().map(String::as_str));
    let statuses: Vec<Value> = stdout(&marie.cli(&wait))
        .lines()
        .map(|l| serde_json::from_str(l).expect("status"))
        .collect();
    assert_eq!(statuses.len(), 2000);
    assert!(
        statuses.iter().all(|s| s["state"] == "succeeded"),
        "a job did not succeed"
    );
    let ends = ends(&marie);
    assert!(
        ids.iter().all(|id| ends.get(id) == Some(&1)),
        "a job ended other than once"
    );
    let executors: std::collections::HashSet<&str> = statuses
        .iter()
        .filter_map(|s| s["executor"].as_str())
        .collect();
    assert!(
        executors.len() >= 5,
        "the burst ran on {} executors",
        executors.len()
    );

    // Idle: back to min (1 executor) once the scale-down window has passed.
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(20));
    assert!(marie.all_logs().contains("draining executor to scale down"));
}

#[test]
fn local_backend_scales_a_burst_and_back() {
    burst_scales_up_to_max_completes_every_job_once_and_returns_to_min("local");
}

#[test]
fn process_backend_scales_a_burst_with_executor_processes_and_back() {
    burst_scales_up_to_max_completes_every_job_once_and_returns_to_min("process");
}

#[test]
fn a_pool_at_zero_accepts_a_job_starts_an_executor_and_returns_to_zero() {
    let marie = Marie::start_with(Some(&config("local")), &[]);
    assert_eq!(slots(&marie, "zero"), (0, 0), "the pool starts at zero");
    let started = Instant::now();
    let out = marie.cli_with_stdin(
        &[
            "submit",
            "--pool",
            "zero",
            "--handler",
            "echo",
            "--wait",
            "--json",
        ],
        b"wake up",
    );
    let first_result = started.elapsed();
    let line: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON");
    assert_eq!(line["state"], "succeeded", "{line}");
    eprintln!("zero → first result in {first_result:?}");
    assert!(
        marie
            .all_logs()
            .contains("first job queued for an empty pool")
    );
    let metrics = reqwest::blocking::get(marie.http_url("/metrics"))
        .and_then(|r| r.text())
        .expect("GET /metrics");
    let value = |name: &str| -> f64 {
        let prefix = format!("{name}{{executor=\"zero\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
    };
    assert!(
        value("marie_supervisor_desired_executors") <= 1.0,
        "exported for the pool"
    );
    let cold_start = value("marie_supervisor_cold_start_seconds");
    assert!(
        cold_start > 0.0 && cold_start < first_result.as_secs_f64() + 1.0,
        "{cold_start}"
    );
    wait_for_capacity(&marie, "zero", 0, Duration::from_secs(20));
}

#[test]
fn stopping_the_node_drains_executor_processes_instead_of_killing_their_jobs() {
    let mut marie = Marie::start_with(Some(&config("process")), &[]);
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(20));
    let files = write_files(&marie.dir().join("in"), (0..4).map(|_| b"2000".to_vec()));
    let mut args = vec!["submit", "--pool", "burst", "--handler", "sleep", "--json"];
    args.extend(files.iter().map(String::as_str));
    let ids: Vec<String> = marie
        .cli_json_lines(&args)
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    let running = |marie: &Marie| {
        ids.iter()
            .filter(|id| {
                let out = marie.cli(&["status", "--json", id]);
                serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|s| s["state"] == "running")
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(&marie) < 4 {
        assert!(Instant::now() < deadline, "the jobs never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    marie.signal(nix::sys::signal::Signal::SIGINT);
    assert!(
        marie.wait_exit(Duration::from_secs(40)),
        "marie up exited with an error"
    );
    marie.restart();
    for id in &ids {
        let status: Value =
            serde_json::from_slice(&marie.cli(&["status", "--json", id]).stdout).expect("status");
        assert_eq!(status["state"], "succeeded", "{status}");
        assert_eq!(
            status["attempt"], 1,
            "drained, not killed and re-run: {status}"
        );
    }
}
