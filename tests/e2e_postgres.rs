//! End-to-end on the Postgres store: a real `marie up` over a throwaway Postgres server
//! runs jobs, keeps them across a restart of the node, never logs the password, and
//! refuses to start with a wrong one.

mod common;

use common::{Marie, write_files};
use marie_test_postgres::{PASSWORD, TestPostgres};
use serde_json::Value;

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
