//! Crash safety: SIGKILL `marie up` while jobs run, start it again on the same data
//! directory, and every accepted job ends succeeded, exactly once.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Marie, write_files};
use serde_json::Value;

const WIDE_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 2
slots = 50
handlers = ["sleep"]
"#;

const JOBS: usize = 2000;

fn succeeded_count(marie: &Marie) -> usize {
    let lines =
        marie.cli_json_lines(&["jobs", "--state", "succeeded", "--limit", "1000", "--json"]);
    lines[0]["jobs"].as_array().map_or(0, Vec::len)
}

#[test]
fn sigkill_while_jobs_run_loses_nothing_and_runs_nothing_twice() {
    let mut marie = Marie::start_with(Some(WIDE_POOL), &[]);
    // 20 s of work on the 100 slots: however slow each look at the store is on a busy
    // machine, the kill lands while jobs still run.
    let files = write_files(&marie.dir().join("in"), (0..JOBS).map(|_| b"1000".to_vec()));
    let mut args = vec![
        "submit",
        "--pool",
        "cpu-general",
        "--handler",
        "sleep",
        "--json",
    ];
    args.extend(files.iter().map(String::as_str));
    let accepted: Vec<String> = marie
        .cli_json_lines(&args)
        .iter()
        .map(|line| {
            line["id"]
                .as_str()
                .unwrap_or_else(|| panic!("not accepted: {line}"))
                .to_owned()
        })
        .collect();
    assert_eq!(accepted.len(), JOBS);

    // Kill once some jobs have finished and others are running.
    let deadline = Instant::now() + Duration::from_secs(60);
    while succeeded_count(&marie) < 100 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    marie.kill();
    let killed_at_ms = unix_ms();
    marie.restart();

    let mut args = vec!["wait", "--json", "--timeout-secs", "120"];
    args.extend(accepted.iter().map(String::as_str));
    let ended = marie.cli_json_lines(&args);
    assert_eq!(ended.len(), JOBS);
    let not_succeeded: Vec<&Value> = ended.iter().filter(|s| s["state"] != "succeeded").collect();
    assert!(
        not_succeeded.is_empty(),
        "jobs that did not succeed: {not_succeeded:?}"
    );
    assert!(
        ended.iter().any(|s| s["attempt"] == 2),
        "no job was in flight at the kill, so the test proved nothing"
    );

    // The store takes a job's end once: at most one "job ended" line per job, ever.
    let logs = marie.all_logs();
    let mut ends: HashMap<&str, usize> = HashMap::new();
    for line in logs.lines().filter(|l| l.contains("job ended")) {
        let id = line
            .split("job=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("job id");
        *ends.entry(id).or_default() += 1;
    }
    // The log line follows the commit, and the SIGKILL can fall between the two (after
    // a whole batch of commits, on a busy machine): a job the killed run ended may have
    // no line, but never two, and every job ended after the kill has its one line.
    let mut after_kill = 0;
    for status in &ended {
        let id = status["id"].as_str().expect("id");
        let count = ends.get(id).copied().unwrap_or(0);
        let ended_at_ms = status["updated_at_ms"].as_u64().expect("updated_at_ms");
        if ended_at_ms > killed_at_ms {
            after_kill += 1;
            assert_eq!(
                count, 1,
                "job {id}, ended after the kill, ended {count} times"
            );
        } else {
            assert!(count <= 1, "job {id} ended {count} times");
        }
    }
    assert!(after_kill > 0, "no job ended after the kill");
}

/// Now, in Unix milliseconds (the clock of the jobs' `updated_at_ms`).
fn unix_ms() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("the clock is past 1970").as_millis() as u64
}
