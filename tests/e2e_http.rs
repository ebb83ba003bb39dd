//! End-to-end: the HTTP API of a real `marie up` process, driven with a real HTTP client.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Marie, free_port, marie_bin, stdout};
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response, multipart};
use serde_json::Value;

/// One pool with one executor of one slot and a queue of two: the fourth sleep job
/// finds the queue full.
const TINY_QUEUE: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 1
handlers = ["echo", "sleep"]
max_queued = 2
"#;

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

fn json(response: Response) -> Value {
    let text = response.text().expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Submits `body` raw with `query`; returns the response.
fn post_raw(marie: &Marie, query: &str, body: Vec<u8>) -> Response {
    http()
        .post(marie.http_url(&format!("/api/jobs?{query}")))
        .body(body)
        .send()
        .expect("POST /api/jobs")
}

/// Submits an echo job and returns its id.
fn submit_echo(marie: &Marie, payload: &[u8]) -> String {
    let response = post_raw(marie, "pool=cpu-general&handler=echo", payload.to_vec());
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    json(response)["result"]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn get(marie: &Marie, path: &str) -> Response {
    http()
        .get(marie.http_url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Asserts the one error shape, the status and the code; returns the error object.
fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let body = json(response);
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty(), "{body}");
    body["error"].clone()
}

fn wait_for_state(marie: &Marie, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = json(get(marie, &format!("/api/jobs/{id}")));
        if status["result"]["state"] == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never {state}: {status}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn raw_and_multipart_submits_run_and_their_results_are_the_payloads() {
    let marie = Marie::start();

    // Raw body, fields in the query string.
    let response = post_raw(
        &marie,
        "pool=cpu-general&handler=echo&priority=3&project_id=acme&ref_type=invoice&ref_id=42&max_attempts=2&timeout_secs=30",
        b"raw payload".to_vec(),
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a Location header");
    let body = json(response);
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["status", "result"]);
    assert_eq!(body["status"], "OK");
    assert_eq!(body["result"]["deduplicated"], false);
    let raw_id = body["result"]["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/api/jobs/{raw_id}"));

    // Multipart, fields as parts.
    let form = multipart::Form::new()
        .text("pool", "cpu-general")
        .text("handler", "echo")
        .text("project_id", "beta")
        .part(
            "file",
            multipart::Part::bytes(b"multipart payload".to_vec()).file_name("doc.bin"),
        );
    let response = http()
        .post(marie.http_url("/api/jobs"))
        .multipart(form)
        .send()
        .expect("multipart POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let multipart_id = json(response)["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Raw body, fields in X-Marie-* headers.
    let response = http()
        .post(marie.http_url("/api/jobs"))
        .header("X-Marie-Pool", "cpu-general")
        .header("X-Marie-Handler", "echo")
        .body("header payload")
        .send()
        .expect("POST with headers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let header_id = json(response)["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // A status right away, then a long-poll until the end.
    let status = json(get(&marie, &format!("/api/jobs/{raw_id}")));
    assert_eq!(status["status"], "OK");
    assert_eq!(status["result"]["id"], raw_id.as_str());
    assert_eq!(status["result"]["pool"], "cpu-general");
    assert_eq!(status["result"]["priority"], 3);
    assert_eq!(status["result"]["max_attempts"], 2);
    assert_eq!(status["result"]["metadata"]["project_id"], "acme");
    assert_eq!(status["result"]["metadata"]["ref_id"], "42");
    for (id, payload) in [
        (&raw_id, &b"raw payload"[..]),
        (&multipart_id, b"multipart payload"),
        (&header_id, b"header payload"),
    ] {
        let ended = json(get(&marie, &format!("/api/jobs/{id}?wait=30")));
        assert_eq!(ended["result"]["state"], "succeeded", "{ended}");
        assert_eq!(ended["result"]["output_len"], payload.len());
        let result = get(&marie, &format!("/api/jobs/{id}/result"));
        assert_eq!(result.status(), StatusCode::OK);
        assert_eq!(result.headers()["content-type"], "application/octet-stream");
        assert_eq!(result.bytes().expect("bytes").as_ref(), payload);
    }
    let multipart_status = json(get(&marie, &format!("/api/jobs/{multipart_id}")));
    assert_eq!(multipart_status["result"]["metadata"]["project_id"], "beta");
}

#[test]
fn a_running_sleep_job_is_cancelled_and_cannot_be_cancelled_twice() {
    let marie = Marie::start();
    let response = post_raw(&marie, "pool=cpu-general&handler=sleep", b"30000".to_vec());
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = json(response)["result"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_state(&marie, &id, "running");
    let no_result = get(&marie, &format!("/api/jobs/{id}/result"));
    assert_error(no_result, StatusCode::CONFLICT, "no_result");

    let response = http()
        .delete(marie.http_url(&format!("/api/jobs/{id}")))
        .send()
        .expect("DELETE");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json(response);
    assert_eq!(body["result"]["id"], id.as_str());
    assert_eq!(body["result"]["state"], "cancelled");
    let status = json(get(&marie, &format!("/api/jobs/{id}")));
    assert_eq!(status["result"]["state"], "cancelled");

    let again = http()
        .delete(marie.http_url(&format!("/api/jobs/{id}")))
        .send()
        .expect("DELETE again");
    assert_error(again, StatusCode::CONFLICT, "already_finished");
}

#[test]
fn paging_over_thirty_jobs_seven_at_a_time_returns_each_once() {
    let marie = Marie::start();
    let submitted: HashSet<String> = (0..30)
        .map(|i| submit_echo(&marie, format!("job {i}").as_bytes()))
        .collect();
    assert_eq!(submitted.len(), 30);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/api/jobs?pool=cpu-general&limit=7".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = get(&marie, &path);
        assert_eq!(response.status(), StatusCode::OK);
        let page = json(response);
        let jobs = page["result"]["jobs"].as_array().expect("jobs").clone();
        assert!(jobs.len() <= 7, "{page}");
        seen.extend(
            jobs.iter()
                .map(|j| j["id"].as_str().expect("id").to_owned()),
        );
        pages += 1;
        match page["result"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen.len(), 30, "every job once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), submitted);
    assert!(pages >= 5, "30 jobs at 7 a page need 5 pages, got {pages}");

    // Filtering by state: after the jobs end, all 30 are succeeded.
    for id in &submitted {
        json(get(&marie, &format!("/api/jobs/{id}?wait=30")));
    }
    let page = json(get(&marie, "/api/jobs?state=succeeded&limit=100"));
    assert_eq!(page["result"]["jobs"].as_array().map(Vec::len), Some(30));
    assert_eq!(page["result"]["next"], Value::Null);
}

#[test]
fn every_refusal_has_one_json_shape_and_its_status() {
    let marie = Marie::start_with(None, &[("MARIE_GATEWAY__MAX_PAYLOAD_BYTES", "1024")]);

    // 400: a bad field, named.
    let err = assert_error(
        post_raw(
            &marie,
            "pool=cpu-general&handler=echo&priority=high",
            vec![1],
        ),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(err["field"], "priority");
    assert!(
        err["message"]
            .as_str()
            .expect("message")
            .contains("priority")
    );
    let err = assert_error(
        post_raw(&marie, "handler=echo", vec![1]),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(err["field"], "pool");
    let err = assert_error(
        post_raw(&marie, "pool=nope&handler=echo", vec![1]),
        StatusCode::BAD_REQUEST,
        "unknown_pool",
    );
    assert!(
        err["message"]
            .as_str()
            .expect("message")
            .contains("cpu-general")
    );
    assert_error(
        post_raw(&marie, "pool=cpu-general&handler=ocr", vec![1]),
        StatusCode::BAD_REQUEST,
        "unknown_handler",
    );
    let err = assert_error(
        get(&marie, "/api/jobs/not-a-uuid"),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(err["field"], "id");
    let err = assert_error(
        get(&marie, "/api/jobs?limit=0"),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(err["field"], "limit");
    let err = assert_error(
        get(&marie, "/api/jobs?state=sleeping"),
        StatusCode::BAD_REQUEST,
        "invalid_field",
    );
    assert_eq!(err["field"], "state");

    // 404: an unknown job, and an unknown route.
    let unknown = "01a21ea2-b7c2-705b-b081-c586c49d2214";
    assert_error(
        get(&marie, &format!("/api/jobs/{unknown}")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&marie, &format!("/api/jobs/{unknown}/result")),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        get(&marie, "/api/nothing"),
        StatusCode::NOT_FOUND,
        "no_route",
    );

    // 413: over gateway.max_payload_bytes (the Gateway refuses), and far over it
    // (the HTTP body limit trips before the body is read).
    let err = assert_error(
        post_raw(&marie, "pool=cpu-general&handler=echo", vec![0; 2048]),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert!(
        err["message"].as_str().expect("message").contains("1024"),
        "{err}"
    );
    assert_error(
        post_raw(&marie, "pool=cpu-general&handler=echo", vec![0; 200 * 1024]),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let form = multipart::Form::new()
        .text("pool", "cpu-general")
        .text("handler", "echo")
        .part("file", multipart::Part::bytes(vec![0; 4096]));
    let response = http()
        .post(marie.http_url("/api/jobs"))
        .multipart(form)
        .send()
        .expect("multipart POST");
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // 409: a duplicate with dedup=reject, and cancelling a job that ended.
    let query = "pool=cpu-general&handler=echo&ref_type=invoice&ref_id=7&dedup=reject";
    assert_eq!(
        post_raw(&marie, query, b"a".to_vec()).status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        post_raw(&marie, query, b"a".to_vec()),
        StatusCode::CONFLICT,
        "duplicate",
    );
    let id = submit_echo(&marie, b"done soon");
    json(get(&marie, &format!("/api/jobs/{id}?wait=30")));
    let response = http()
        .delete(marie.http_url(&format!("/api/jobs/{id}")))
        .send()
        .expect("DELETE");
    assert_error(response, StatusCode::CONFLICT, "already_finished");

    // 405 keeps the shape too.
    let response = http()
        .put(marie.http_url("/api/capacity"))
        .send()
        .expect("PUT");
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let marie = Marie::start_with(Some(TINY_QUEUE), &[]);
    let first = post_raw(&marie, "pool=cpu-general&handler=sleep", b"30000".to_vec());
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first = json(first)["result"]["id"].as_str().expect("id").to_owned();
    wait_for_state(&marie, &first, "running");
    let mut accepted = 1;
    let refused = loop {
        let response = post_raw(&marie, "pool=cpu-general&handler=sleep", b"30000".to_vec());
        if response.status() == StatusCode::ACCEPTED {
            accepted += 1;
            assert!(accepted <= 3, "the queue of 2 took {accepted} jobs");
            continue;
        }
        break response;
    };
    let retry_after: u32 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After header");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let err = assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    assert!(
        err["message"]
            .as_str()
            .expect("message")
            .contains("retry after"),
        "{err}"
    );
}

#[test]
fn a_bearer_token_guards_the_api_but_not_health() {
    let marie = Marie::start_with(None, &[("MARIE_HTTP__AUTH_TOKEN", "s3cret")]);
    let response = get(&marie, "/api/capacity");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized");
    let wrong = http()
        .get(marie.http_url("/api/capacity"))
        .bearer_auth("guess")
        .send()
        .expect("GET");
    assert_error(wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(
        post_raw(&marie, "pool=cpu-general&handler=echo", b"x".to_vec()),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let right = http()
        .get(marie.http_url("/api/capacity"))
        .bearer_auth("s3cret")
        .send()
        .expect("GET");
    assert_eq!(right.status(), StatusCode::OK);
    let submitted = http()
        .post(marie.http_url("/api/jobs?pool=cpu-general&handler=echo"))
        .bearer_auth("s3cret")
        .body("x")
        .send()
        .expect("POST");
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    assert_eq!(get(&marie, "/healthz").status(), StatusCode::OK);
    assert_eq!(get(&marie, "/readyz").status(), StatusCode::OK);
    // The console's page loads without the token (it asks for it); its data does not.
    assert_eq!(get(&marie, "/").status(), StatusCode::OK);
    assert_eq!(get(&marie, "/ui/js/api.js").status(), StatusCode::OK);
    assert_error(
        get(&marie, "/api/history"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[test]
fn health_openapi_and_capacity_answer_like_the_cli() {
    let marie = Marie::start();
    let health = get(&marie, "/healthz");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(json(health)["result"]["state"], "alive");
    let ready = get(&marie, "/readyz");
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(json(ready)["result"]["state"], "ready");

    let doc = get(&marie, "/api/openapi.json");
    assert_eq!(doc.status(), StatusCode::OK);
    let doc = json(doc);
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(doc["paths"]["/api/jobs"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/api/jobs"]["get"].is_object());
    assert!(doc["paths"]["/api/capacity"]["get"].is_object());

    let over_http = get(&marie, "/api/capacity");
    assert_eq!(over_http.status(), StatusCode::OK);
    let over_http = json(over_http);
    let from_cli: Value =
        serde_json::from_str(&stdout(&marie.cli(&["capacity"]))).expect("capacity JSON");
    assert_eq!(over_http, from_cli);
    // Same keys in the seed's order.
    assert_eq!(over_http.to_string(), from_cli.to_string());
    let pool = &over_http["result"]["slots"][0];
    let keys: Vec<&String> = pool.as_object().expect("a pool").keys().collect();
    assert_eq!(
        keys,
        ["name", "capacity", "target", "used", "available", "holders"]
    );
    let totals: Vec<&String> = over_http["result"]["totals"]
        .as_object()
        .expect("totals")
        .keys()
        .collect();
    assert_eq!(totals, ["capacity", "used", "available"]);
}

#[test]
fn a_taken_http_port_stops_start_up_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(marie_bin())
        .current_dir(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("up")
        .env("MARIE_CLUSTER__PORT", free_port().to_string())
        .env("MARIE_HTTP__PORT", port.to_string())
        .env_remove("MARIE_CLUSTER__COOKIE")
        .stdin(Stdio::null())
        .output()
        .expect("run marie up");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot listen on the HTTP port") && stderr.contains("MARIE_HTTP__PORT"),
        "{stderr}"
    );
}

#[test]
fn history_samples_every_pool_and_the_console_is_served_from_the_binary() {
    let marie = Marie::start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let history = loop {
        let history = json(get(&marie, "/api/history"))["result"].clone();
        let pools = history["pools"].as_array().cloned().unwrap_or_default();
        let sampled = |p: &Value| p["samples"].as_array().is_some_and(|s| s.len() >= 2);
        if pools.len() == 3 && pools.iter().all(sampled) {
            break history;
        }
        assert!(
            Instant::now() < deadline,
            "not two samples of each pool: {history}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(history["window_secs"], 900);
    assert_eq!(history["interval_ms"], 2000);
    let general = history["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == "cpu-general"))
        .expect("cpu-general");
    assert_eq!(general["slots_per_executor"], 4);
    let samples = general["samples"].as_array().expect("samples");
    let last = samples.last().expect("a sample");
    assert_eq!(last["slots_capacity"], 8, "{last}");
    assert_eq!(last["executors"], 2, "{last}");
    assert_eq!(last["executors_target"], 2, "{last}");
    assert_eq!(last["pending"], 0, "{last}");
    let times: Vec<u64> = samples.iter().filter_map(|s| s["at_ms"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    assert!(history["decisions"].is_array());

    let nodes = json(get(&marie, "/api/nodes"));
    assert!(
        nodes["result"]["nodes"][0]["since_ms"].as_u64().is_some(),
        "{nodes}"
    );
    let doc = json(get(&marie, "/api/openapi.json"));
    assert!(doc["paths"]["/api/history"]["get"].is_object());

    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/console.css", "text/css"),
        ("/ui/js/app.js", "text/javascript"),
    ] {
        let response = get(&marie, path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with(kind),
            "{path}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap_or_default()
                .contains("default-src 'self'"),
            "{path}"
        );
    }
    let page = get(&marie, "/").text().expect("the page");
    assert!(page.contains("/ui/js/app.js"), "{page}");
    assert_error(
        get(&marie, "/ui/js/missing.js"),
        StatusCode::NOT_FOUND,
        "no_route",
    );
}
