//! Overload: ten times a pool's capacity offered over HTTP with `max_queued` set. Past
//! the limit submits get 429 with `Retry-After`; `marie submit` run meanwhile waits
//! that long and submits again by itself; memory stays bounded; every accepted job
//! completes, once.
//!
//! Short profile: 8 s of flood. `MARIE_CHAOS_LONG=1`: 60 s.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Marie, memory_kib};
use serde_json::Value;

/// One executor of 2 slots; a job sleeps 100 ms: 20 jobs a second. At most 20 queued.
const SMALL_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 2
handlers = ["sleep"]
max_queued = 20
"#;

/// Jobs a second the pool can run.
const CAPACITY_PER_SEC: u64 = 20;

fn flood_secs() -> u64 {
    if std::env::var_os("MARIE_CHAOS_LONG").is_some_and(|v| v == "1") {
        60
    } else {
        8
    }
}

/// What one flooding thread saw.
#[derive(Default)]
struct Flood {
    accepted: Vec<String>,
    refused: u64,
}

/// Submits at `per_sec` until `stop`; every answer is 202 or 429 with a Retry-After.
fn flood(url: String, per_sec: u64, stop: Arc<AtomicBool>) -> Flood {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let gap = Duration::from_micros(1_000_000 / per_sec);
    let mut seen = Flood::default();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let response = http.post(&url).body("100").send().expect("POST");
        match response.status().as_u16() {
            202 => {
                let body: Value = response.json().expect("JSON");
                let id = body["result"]["id"].as_str().expect("an id").to_owned();
                seen.accepted.push(id);
            }
            429 => {
                let retry_after: u64 = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("429 carries a numeric Retry-After");
                assert!(retry_after >= 1, "Retry-After {retry_after}");
                seen.refused += 1;
            }
            other => panic!("a submit under overload got {other}: {:?}", response.text()),
        }
        next += gap;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    seen
}

#[test]
fn ten_times_the_capacity_is_refused_with_retry_after_and_every_accepted_job_completes() {
    let marie = Marie::start_with(Some(SMALL_POOL), &[]);
    let (rss_before, _) = memory_kib(marie.pid());
    let url = marie.http_url("/api/jobs?pool=cpu-general&handler=sleep");
    let stop = Arc::new(AtomicBool::new(false));
    let threads = 4;
    let offered_per_sec = CAPACITY_PER_SEC * 10;
    let flooders: Vec<_> = (0..threads)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || flood(url, offered_per_sec / threads, stop))
        })
        .collect();

    // Meanwhile the CLI submits 30 documents into the full queue: it must wait the
    // Retry-After and submit again by itself.
    std::thread::sleep(Duration::from_secs(1));
    let files: Vec<String> = (0..30)
        .map(|i| {
            let path = marie.dir().join(format!("doc-{i}"));
            std::fs::write(&path, "100").expect("a document");
            path.display().to_string()
        })
        .collect();
    let mut cli = marie.command();
    cli.args([
        "submit",
        "--pool",
        "cpu-general",
        "--handler",
        "sleep",
        "--json",
        "--retry-for-secs",
        "120",
    ])
    .args(&files);
    let started = Instant::now();
    let cli = std::thread::spawn(move || {
        let out = cli.output().expect("run marie submit");
        (out, started.elapsed())
    });

    let flood_for = Duration::from_secs(flood_secs());
    std::thread::sleep(flood_for.saturating_sub(Duration::from_secs(1)));
    stop.store(true, Ordering::Relaxed);
    let (cli, cli_took) = cli.join().expect("the CLI thread");
    assert!(
        cli.status.success(),
        "marie submit retried into the full queue:\n{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli_ids: Vec<String> = String::from_utf8_lossy(&cli.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a JSON line");
            v["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    assert_eq!(cli_ids.len(), files.len(), "one job per document");
    let seen: Vec<Flood> = flooders
        .into_iter()
        .map(|t| t.join().expect("a flooding thread"))
        .collect();
    let accepted: Vec<&String> = seen.iter().flat_map(|s| &s.accepted).collect();
    let refused: u64 = seen.iter().map(|s| s.refused).sum();
    let (_, peak) = memory_kib(marie.pid());
    assert!(refused > 0, "ten times the capacity was never refused");

    // Every accepted job, the CLI's too, ends succeeded after one run.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("a client");
    for id in accepted.iter().copied().chain(&cli_ids) {
        let status: Value = http
            .get(marie.http_url(&format!("/api/jobs/{id}?wait=60")))
            .send()
            .expect("GET")
            .json()
            .expect("JSON");
        assert_eq!(status["result"]["state"], "succeeded", "{status}");
        assert_eq!(status["result"]["attempt"], 1, "ran once: {status}");
    }
    let grew_mib = peak.saturating_sub(rss_before) / 1024;
    println!(
        "overload: {offered_per_sec}/s offered for {flood_for:?} to a pool of {CAPACITY_PER_SEC}/s \
         (max_queued 20): accepted {} + {} by `marie submit` (took {cli_took:.1?}), refused 429 {refused}, \
         all succeeded once, lost 0; RSS {} MiB, peak +{grew_mib} MiB",
        accepted.len(),
        cli_ids.len(),
        rss_before / 1024,
    );
    assert!(
        grew_mib < 256,
        "memory grew by {grew_mib} MiB under overload"
    );
}
