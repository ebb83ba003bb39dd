//! End-to-end: a real `marie up` process, driven by the real CLI over the cluster port.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Marie, documents, stderr, stdout, write_files};
use image::ImageFormat;
use serde_json::Value;

/// One pool with one executor of one slot: the second job always waits.
const ONE_SLOT: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 1
handlers = ["echo", "sleep"]
"#;

fn by_file(lines: &[Value]) -> HashMap<String, Value> {
    lines
        .iter()
        .map(|l| (l["file"].as_str().expect("file").to_owned(), l.clone()))
        .collect()
}

#[test]
fn five_hundred_echo_jobs_all_succeed_with_their_outputs() {
    let marie = Marie::start();
    let inputs = marie.dir().join("in");
    let outputs = marie.dir().join("out");
    let payloads: Vec<Vec<u8>> = (0..500)
        .map(|i| format!("payload number {i}").into_bytes())
        .collect();
    let files = write_files(&inputs, payloads.clone());
    let mut args = vec![
        "submit",
        "--pool",
        "cpu-general",
        "--handler",
        "echo",
        "--wait",
        "--json",
    ];
    let out_dir = outputs.display().to_string();
    args.extend(["--output-dir", &out_dir]);
    args.extend(files.iter().map(String::as_str));
    let lines = marie.cli_json_lines(&args);
    assert_eq!(lines.len(), 500);
    for (file, payload) in files.iter().zip(&payloads) {
        let line = &by_file(&lines)[file];
        assert_eq!(line["state"], "succeeded", "{line}");
        let id = line["id"].as_str().expect("id");
        let output = std::fs::read(outputs.join(id)).expect("output written");
        assert_eq!(&output, payload, "output of {file}");
    }
    let page: Value = serde_json::from_str(&stdout(&marie.cli(&[
        "jobs",
        "--state",
        "succeeded",
        "--limit",
        "1000",
        "--json",
    ])))
    .expect("jobs JSON");
    assert_eq!(page["jobs"].as_array().map(Vec::len), Some(500));
}

#[test]
fn a_pdf_and_an_image_go_through_the_real_handlers_and_a_corrupt_pdf_fails_alone() {
    let marie = Marie::start();
    let dir = marie.dir().join("docs");
    std::fs::create_dir_all(&dir).expect("docs dir");
    let pdf = dir.join("invoice.pdf");
    std::fs::write(
        &pdf,
        documents::pdf_with_pages(&["Invoice 42", "Total due 99 EUR"]),
    )
    .expect("pdf");
    let corrupt = dir.join("corrupt.pdf");
    let mut broken = documents::pdf_with_pages(&["lost"]);
    broken.truncate(broken.len() / 2);
    std::fs::write(&corrupt, broken).expect("corrupt pdf");
    let png = dir.join("scan.png");
    std::fs::write(&png, documents::colour_image(ImageFormat::Png)).expect("png");
    let out = marie.dir().join("out");
    let out_s = out.display().to_string();
    let (pdf_s, corrupt_s, png_s) = (
        pdf.display().to_string(),
        corrupt.display().to_string(),
        png.display().to_string(),
    );

    let pdf_lines = marie.cli_json_lines(&[
        "submit",
        "--pool",
        "extract",
        "--handler",
        "pdf-text",
        "--wait",
        "--json",
        "--output-dir",
        &out_s,
        &pdf_s,
        &corrupt_s,
    ]);
    let pdf_lines = by_file(&pdf_lines);
    let good = &pdf_lines[&pdf_s];
    assert_eq!(good["state"], "succeeded", "{good}");
    let text: Value = serde_json::from_slice(
        &std::fs::read(out.join(good["id"].as_str().expect("id"))).expect("text"),
    )
    .expect("pdf-text JSON");
    assert_eq!(text["pages"][0]["text"], "Invoice 42");
    assert_eq!(text["pages"][1]["text"], "Total due 99 EUR");
    let bad = &pdf_lines[&corrupt_s];
    assert_eq!(bad["state"], "failed", "{bad}");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a readable PDF")),
        "{bad}"
    );
    // A document that can never be read fails at once: no retries.
    let status: Value = serde_json::from_str(&stdout(&marie.cli(&[
        "status",
        "--json",
        bad["id"].as_str().expect("id"),
    ])))
    .expect("status JSON");
    assert_eq!(status["attempt"], 1);

    let image_lines = marie.cli_json_lines(&[
        "submit",
        "--pool",
        "extract",
        "--handler",
        "image-normalize",
        "--wait",
        "--json",
        "--output-dir",
        &out_s,
        &png_s,
    ]);
    assert_eq!(image_lines[0]["state"], "succeeded", "{}", image_lines[0]);
    let normalized =
        std::fs::read(out.join(image_lines[0]["id"].as_str().expect("id"))).expect("png out");
    let decoded = image::load_from_memory(&normalized).expect("a PNG came back");
    assert_eq!((decoded.width(), decoded.height()), (1024, 512));
    assert_eq!(decoded.color(), image::ColorType::L8);
}

#[test]
fn unknown_pool_unknown_handler_and_oversize_payload_are_refused_clearly() {
    let marie = Marie::start_with(None, &[("MARIE_GATEWAY__MAX_PAYLOAD_BYTES", "1000")]);
    let out = marie.cli_with_stdin(
        &["submit", "--pool", "gpu-nowhere", "--handler", "echo"],
        b"x",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            r#"unknown pool "gpu-nowhere": configured pools are ["cpu-general", "extract", "gpu-ocr"]"#
        ),
        "{}",
        stderr(&out)
    );

    let out = marie.cli_with_stdin(&["submit", "--pool", "extract", "--handler", "sleep"], b"x");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(r#"pool "extract" has no handler "sleep""#),
        "{}",
        stderr(&out)
    );

    let out = marie.cli_with_stdin(
        &["submit", "--pool", "extract", "--handler", "echo"],
        &[0u8; 1001],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("payload of 1001 bytes is over the limit of 1000 bytes"),
        "{}",
        stderr(&out)
    );

    // Refusals harm nothing: the next job runs.
    let out = marie.cli_with_stdin(
        &["submit", "--pool", "extract", "--handler", "echo", "--wait"],
        b"fine",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("succeeded"));
}

#[test]
fn marie_up_and_k8s_render_refuse_a_configuration_that_cannot_work_naming_every_key() {
    let config = r#"
[scheduler]
heartbeat_ms = 10000
executor_timeout_ms = 30000
[[executor.pools]]
name = "a"
handlers = ["echo", "ocr"]
"#;
    for args in [&["up"][..], &["k8s", "render", "--out", "-"]] {
        let (code, stderr) = common::run_with_config(config, args);
        assert_eq!(code, Some(2), "marie {args:?}: {stderr}");
        for expected in [
            "2 problem(s)",
            "scheduler.heartbeat_ms (MARIE_SCHEDULER__HEARTBEAT_MS) = 10000: must be below scheduler.lease_ttl_ms = 10000",
            r#"executor.pools[0].handlers = ["echo", "ocr"]: in pool "a", ["ocr"] is not a handler"#,
        ] {
            assert!(stderr.contains(expected), "marie {args:?}: {stderr}");
        }
    }
}

#[test]
fn a_wrong_cookie_is_refused_with_a_clear_message() {
    let marie = Marie::start();
    let wrong = marie.dir().join("wrong-cookie");
    std::fs::write(&wrong, "not-the-cookie").expect("cookie file");
    let out = marie.cli(&["capacity", "--cookie-file", &wrong.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refused the handshake: the cookie does not match"),
        "{}",
        stderr(&out)
    );
    assert!(
        marie.cli(&["capacity"]).status.success(),
        "the node still serves the right cookie"
    );
}

fn submit_one(marie: &Marie, args: &[&str], stdin: &[u8]) -> String {
    let out = marie.cli_with_stdin(args, stdin);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .split_whitespace()
        .next()
        .expect("a job id")
        .to_owned()
}

fn status(marie: &Marie, id: &str) -> Value {
    serde_json::from_str(&stdout(&marie.cli(&["status", "--json", id]))).expect("status JSON")
}

#[test]
fn cancel_works_on_a_queued_and_on_a_running_job() {
    let marie = Marie::start_with(Some(ONE_SLOT), &[]);
    let sleep = ["submit", "--pool", "cpu-general", "--handler", "sleep"];
    let running = submit_one(&marie, &sleep, b"60000");
    let queued = submit_one(&marie, &sleep, b"60000");
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&marie, &running)["state"] != "running" {
        assert!(Instant::now() < deadline, "the first job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&marie, &queued)["state"], "queued");

    let out = marie.cli(&["cancel", &queued]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = status(&marie, &queued);
    assert_eq!(st["state"], "cancelled");
    assert_eq!(st["attempt"], 0, "a cancelled queued job never ran");

    let out = marie.cli(&["cancel", &running]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status(&marie, &running)["state"], "cancelled");

    // The slot is free again at once: a new job runs in well under the sleeper's 60 s.
    let out = marie.cli_with_stdin(
        &[
            "submit",
            "--pool",
            "cpu-general",
            "--handler",
            "echo",
            "--wait",
        ],
        b"next",
    );
    assert!(stdout(&out).contains("succeeded"), "{}", stdout(&out));

    let out = marie.cli(&["cancel", &running]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already ended as cancelled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_lets_running_jobs_finish_before_the_node_stops() {
    let mut marie = Marie::start();
    // Long enough to still run when the stop lands, however slow the machine.
    let id = submit_one(
        &marie,
        &["submit", "--pool", "cpu-general", "--handler", "sleep"],
        b"6000",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = status(&marie, &id)["state"].clone();
        if state == "running" {
            break;
        }
        assert_eq!(state, "queued", "the job ended before the node was stopped");
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    marie.signal(nix::sys::signal::Signal::SIGINT);
    assert!(
        marie.wait_exit(Duration::from_secs(120)),
        "marie up exited with an error:\n{}",
        marie.log(1)
    );
    // The executor held the run when told to drain: its log says so.
    assert!(
        marie
            .log(1)
            .lines()
            .any(|l| l.contains(" draining ") && l.contains("running=1")),
        "no executor held the job when the node stopped:\n{}",
        marie.log(1)
    );
    marie.restart();
    let ended = status(&marie, &id);
    assert_eq!(
        (&ended["state"], &ended["attempt"]),
        (&Value::from("succeeded"), &Value::from(1)),
        "the running job was drained, not lost or re-run: {ended}"
    );
}
