//! Autoscaling end to end: the Supervisor of a real `marie up` scales pools with the
//! `local` backend (executor actors) and the `process` backend (executor processes).

mod common;

use std::collections::{HashMap, HashSet};
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

fn wait_for_capacity(marie: &Marie, pool: &str, capacity: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let (now, _) = slots(marie, pool);
        if now == capacity {
            return;
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
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(60));
    let files = write_files(&marie.dir().join("in"), (0..2000).map(|_| b"30".to_vec()));
    let mut args = vec!["submit", "--pool", "burst", "--handler", "sleep", "--json"];
    args.extend(files.iter().map(String::as_str));
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
    // The Supervisor brought the pool to max: four executors started beside the first
    // one (read from its log, whenever they came up; on a busy machine the burst may
    // drain before the last of them takes a job).
    let started = marie
        .all_logs()
        .lines()
        .filter(|l| l.contains("executor ready") && l.contains("burst"))
        .count();
    assert!(
        started >= 4,
        "the Supervisor started {started} executors for the burst"
    );

    // Idle: back to min (1 executor) once the scale-down window has passed.
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(60));
    assert_eq!(
        slots(&marie, "burst"),
        (4, 4),
        "target follows the Supervisor"
    );
    // At its peak the pool had max executors at once: the Supervisor's log shows it
    // deciding 5, and the CapacityManager's, replayed in order, five executors at once.
    let logs = marie.all_logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("scaling pool=\"burst\"") && l.contains(" to=5 ")),
        "the Supervisor never scaled the burst to max:\n{logs}"
    );
    assert!(logs.contains("draining executor to scale down"));
    let peak = peak_executors(&logs, "burst");
    assert!(
        peak >= 5,
        "{backend}: {peak} executors at the peak:\n{logs}"
    );
}

/// The most executors `pool` had at once, replayed from the CapacityManager's log in
/// order: an executor counts from "executor registered" until it is draining, lost,
/// unreachable or left. A poll of `marie capacity` could miss the moment; the log
/// cannot.
fn peak_executors(logs: &str, pool: &str) -> usize {
    const GONE: [&str; 4] = [
        "draining executor",
        "executor lost",
        "executor unreachable",
        "executor left",
    ];
    let joins = format!("pool={pool} ");
    let mut present = HashSet::new();
    let mut peak = 0;
    for line in logs
        .lines()
        .filter(|l| l.contains("marie_actors::capacity_manager:"))
    {
        let Some(executor) = line
            .split("executor=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        else {
            continue;
        };
        if line.contains("executor registered") && line.contains(&joins) {
            present.insert(executor);
        } else if GONE.iter().any(|gone| line.contains(gone)) {
            present.remove(executor);
        }
        peak = peak.max(present.len());
    }
    peak
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
    wait_for_capacity(&marie, "zero", 0, Duration::from_secs(60));
}

#[test]
fn stopping_the_node_drains_executor_processes_instead_of_killing_their_jobs() {
    let mut marie = Marie::start_with(Some(&config("process")), &[]);
    wait_for_capacity(&marie, "burst", 4, Duration::from_secs(60));
    // Jobs long enough to still run when the stop lands, however slow the machine.
    let files = write_files(&marie.dir().join("in"), (0..4).map(|_| b"6000".to_vec()));
    let mut args = vec!["submit", "--pool", "burst", "--handler", "sleep", "--json"];
    args.extend(files.iter().map(String::as_str));
    let ids: HashSet<String> = marie
        .cli_json_lines(&args)
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_owned())
        .collect();
    // The store's record, one call for all four: every job has been seen running.
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "the jobs never all ran: {} of {} seen running",
            seen.len(),
            ids.len()
        );
        seen.extend(running_jobs(&marie));
        std::thread::sleep(Duration::from_millis(50));
    }
    marie.signal(nix::sys::signal::Signal::SIGINT);
    assert!(
        marie.wait_exit(Duration::from_secs(120)),
        "marie up exited with an error"
    );
    // Each executor process logs how many runs it held when told to drain; a restart
    // rewrites these logs, so read them first.
    let drained = drained_runs(&marie);
    assert!(
        drained >= 1,
        "no executor process held a running job when the node stopped:\n{}",
        marie.all_logs()
    );
    marie.restart();
    for id in &ids {
        let status: Value =
            serde_json::from_slice(&marie.cli(&["status", "--json", id]).stdout).expect("status");
        assert_eq!(
            (&status["state"], &status["attempt"]),
            (&Value::from("succeeded"), &Value::from(1)),
            "drained, not killed and re-run: {status}\n{}",
            marie.all_logs()
        );
    }
}

/// Ids of the jobs the store holds as running, in one call.
fn running_jobs(marie: &Marie) -> Vec<String> {
    let out = marie.cli(&["jobs", "--state", "running", "--limit", "1000", "--json"]);
    let page: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    page["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|job| job["id"].as_str().map(str::to_owned))
        .collect()
}

/// Runs the executor processes held when told to drain ("draining … running=N" in
/// each one's log), summed over the processes.
fn drained_runs(marie: &Marie) -> u64 {
    let executors = marie.dir().join("data").join("executors");
    let logs = std::fs::read_dir(&executors).expect("the executor processes' folders");
    logs.filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("node.log")).ok())
        .map(|log| {
            log.lines()
                .filter(|l| l.contains(" draining "))
                .filter_map(|l| l.split("running=").nth(1)?.trim().parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .sum()
}
