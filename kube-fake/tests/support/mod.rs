//! What the fake's tests share: a pod process that serves `/readyz`, a Deployment for it,
//! HTTP calls, and bounded waits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use marie_kube_fake::{FakeApiServer, FakeOptions, PodStart, PodView};
use serde_json::Value;

/// Every wait is bounded by this (generous: a busy 2-core machine).
pub const WAIT: Duration = Duration::from_secs(60);

/// The namespace of every test.
pub const NS: &str = "marie";

/// The real Python interpreter (not a version manager's shim).
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Options whose pods run `pod.py`: ready unless `<state>/<pod>.notready` exists.
pub fn probe_pods(state: &Path, ignore_sigterm: bool) -> FakeOptions {
    let python = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/pod.py");
    let state = state.to_path_buf();
    let runner = move |start: &PodStart<'_>| {
        let mut command = tokio::process::Command::new(&python);
        command
            .arg(&script)
            .arg(start.http_port.to_string())
            .arg(&state)
            .arg(start.pod);
        if ignore_sigterm {
            command.arg("ignore-sigterm");
        }
        command
    };
    FakeOptions::new(NS, runner).service_account("marie-server")
}

/// Options whose pods only sleep (never ready): for tests of the API alone.
pub fn sleeping_pods() -> FakeOptions {
    let runner = |_: &PodStart<'_>| {
        let mut command = tokio::process::Command::new("sleep");
        command.arg("600");
        command
    };
    FakeOptions::new(NS, runner).service_account("marie-server")
}

/// A Deployment `web` (selector app=web) with `replicas` and a grace period.
pub fn web(replicas: i32, grace_seconds: i64) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: marie
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: {grace_seconds}
      containers:
        - name: web
          image: web:1
"#
    )
}

/// A rendered manifest of the repository.
pub fn manifest(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// One HTTP call: status and JSON body (Null when not JSON).
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut request = client.request(method.parse().expect("method"), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `check` until it gives a value; panics after [`WAIT`] with the journal.
pub async fn wait_for<T>(
    server: &FakeApiServer,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            let journal: Vec<String> = server.journal().iter().map(ToString::to_string).collect();
            panic!(
                "waited {WAIT:?} for {what}; journal:\n{}",
                journal.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `web` has exactly `n` pods, all ready and none terminating.
pub async fn ready_pods(server: &FakeApiServer, n: usize) -> Vec<PodView> {
    wait_for(server, &format!("{n} ready pods"), || {
        let pods = server.pods("web");
        (pods.len() == n && pods.iter().all(|p| p.ready && !p.terminating)).then_some(pods)
    })
    .await
}

/// Merge-patches a pod's annotation as admin.
pub async fn annotate(server: &FakeApiServer, pod: &str, key: &str, value: &str) {
    let url = format!("{}/api/v1/namespaces/{NS}/pods/{pod}", server.url());
    let body = serde_json::json!({"metadata": {"annotations": {key: value}}});
    let (status, answer) = call(
        "PATCH",
        &url,
        Some(server.admin_token()),
        Some("application/merge-patch+json"),
        Some(body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}
