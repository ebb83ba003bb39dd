//! Hostile input on the HTTP API of a running node: Schemathesis (a third-party fuzzer)
//! against `/api/openapi.json` with all its checks, 500 slow connections (slowloris)
//! while others are served and until the node closes them, and a 1 GiB body refused with 413 without the node's memory
//! growing by anything like it.
//!
//! Schemathesis is installed by `scripts/setup-schemathesis` (scripts/test runs it) into
//! `.venv-schemathesis`; `MARIE_SCHEMATHESIS` names another binary. Short profile: 50
//! examples per operation and phase; `MARIE_CHAOS_LONG=1`: 500.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Marie, memory_kib};

/// Two pools that both take `echo`: every pool × handler the document allows is a job
/// this node accepts.
const TWO_POOLS: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 4
handlers = ["echo"]

[[executor.pools]]
name = "extract"
replicas = 1
slots = 2
handlers = ["echo"]
"#;

/// Every check on every operation but one: OpenAPI cannot say that a submit's `pool`
/// and `handler` come from the query *or* from multipart parts, so the document makes
/// them required in the query (true of a raw-body submit) and a multipart submit that
/// gives them only as parts, which the API accepts, would count as "invalid data
/// accepted". The checks that the server accepts valid submits, answers documented
/// statuses and schemas, and never fails stay on for `POST /api/jobs` too.
const CONFIG: &str = r#"
[[operations]]
include-path = "/api/jobs"
include-method = "POST"
checks.negative_data_rejection.enabled = false
"#;

fn long() -> bool {
    std::env::var_os("MARIE_CHAOS_LONG").is_some_and(|v| v == "1")
}

fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("MARIE_SCHEMATHESIS") {
        return path.into();
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-schemathesis/bin/schemathesis");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-schemathesis (scripts/test does)",
        path.display()
    );
    path
}

#[test]
fn schemathesis_finds_nothing_wrong_with_the_api() {
    let marie = Marie::start_with(Some(TWO_POOLS), &[]);
    let examples = if long() { "500" } else { "50" };
    let config = marie.dir().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).expect("the Schemathesis configuration");
    let mut run = Command::new(schemathesis())
        .current_dir(marie.dir())
        .arg("--config-file")
        .arg(&config)
        .args(["run", &marie.http_url("/api/openapi.json")])
        .args(["--checks", "all", "--max-examples", examples])
        .args(["--request-timeout", "30", "--no-color"])
        .env(
            "HYPOTHESIS_STORAGE_DIRECTORY",
            marie.dir().join("hypothesis"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start schemathesis");
    let limit = Duration::from_secs(if long() { 1800 } else { 300 });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().expect("schemathesis runs") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = run.kill();
            panic!("schemathesis ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    run.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read stdout");
    let mut err = String::new();
    run.stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(
        status.success(),
        "schemathesis found problems:\n{out}\n{err}"
    );
    let summary = out.lines().rev().find(|l| l.contains(" in ")).unwrap_or("");
    println!("schemathesis ({examples} examples): {summary}");
    assert!(
        marie.cli(&["capacity"]).status.success(),
        "the node still serves"
    );
}

/// Sends a request head and reads the status line the node answers with.
fn status_of(port: u16, head: &str, body: &[u8]) -> Option<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    tcp.write_all(head.as_bytes()).ok()?;
    let _ = tcp.write_all(body);
    let mut answer = [0u8; 64];
    let n = tcp.read(&mut answer).ok()?;
    let line = String::from_utf8_lossy(&answer[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_1_gib_body_is_refused_with_413_without_the_memory_growing() {
    let marie = Marie::start();
    let (rss_before, _) = memory_kib(marie.pid());
    let port = marie.http_port();
    let gib: u64 = 1 << 30;

    // Announced: refused from the headers, before the body is read.
    let head = format!(
        "POST /api/jobs?pool=cpu-general&handler=echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {gib}\r\n\r\n"
    );
    assert_eq!(status_of(port, &head, &[]), Some(413));

    // Chunked, so nothing is announced: the node reads up to its limit, then refuses.
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let head = "POST /api/jobs?pool=cpu-general&handler=echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    tcp.write_all(head.as_bytes()).expect("head");
    let chunk = vec![b'x'; 1 << 20];
    let mut sent: u64 = 0;
    while sent < gib {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if tcp.write_all(&frame).is_err() {
            break;
        }
        sent += chunk.len() as u64;
    }
    let mut answer = [0u8; 64];
    let status = tcp
        .read(&mut answer)
        .ok()
        .map(|n| String::from_utf8_lossy(&answer[..n]).into_owned());
    assert!(
        sent < gib,
        "the node read the whole GiB instead of refusing it"
    );
    if let Some(line) = status.filter(|l| !l.is_empty()) {
        assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    }

    let (rss_after, peak) = memory_kib(marie.pid());
    let grew_mib = peak.saturating_sub(rss_before) / 1024;
    println!(
        "1 GiB body: refused after {} MiB sent; RSS {} → {} MiB, peak {} MiB (+{grew_mib} MiB)",
        sent >> 20,
        rss_before / 1024,
        rss_after / 1024,
        peak / 1024
    );
    assert!(
        grew_mib < 128,
        "the node's peak memory grew by {grew_mib} MiB for a refused body"
    );
    assert!(marie.cli(&["capacity"]).status.success(), "still serves");
}

#[test]
fn five_hundred_slow_connections_do_not_keep_others_from_being_served() {
    let marie = Marie::start();
    let port = marie.http_port();
    let slow_count = if long() { 2000 } else { 500 };
    // Each slow client opens a request and sends its head a byte at a time.
    let mut slow: Vec<TcpStream> = (0..slow_count)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(slow.len() >= slow_count * 9 / 10, "opened {}", slow.len());
    let head = b"POST /api/jobs?pool=cpu-general&handler=echo HTTP/1.1\r\nHost: x\r\n";
    let started = Instant::now();
    let mut served = 0;
    for round in 0..10 {
        for tcp in &mut slow {
            let _ = tcp.write_all(&head[round % head.len()..][..1]);
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client");
        let response = http
            .post(marie.http_url("/api/jobs?pool=cpu-general&handler=echo"))
            .body(format!("while slow {round}"))
            .send()
            .expect("served while slow connections hang");
        assert_eq!(response.status(), 202);
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let served_in = started.elapsed();

    // The node closes each slow connection once its head is late (30 s).
    let mut closed = 0;
    for tcp in &mut slow {
        tcp.set_read_timeout(Some(Duration::from_secs(90)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        match tcp.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => closed += 1,
        }
    }
    println!(
        "slowloris: {} slow connections open, {served} requests of others served in {served_in:.1?}; \
         {closed} slow connections closed by the node after {:.1?}",
        slow.len(),
        started.elapsed()
    );
    assert_eq!(
        closed,
        slow.len(),
        "every slow connection is closed by the node"
    );
}
