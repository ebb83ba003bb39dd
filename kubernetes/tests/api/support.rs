//! A scripted API server: each test spawns the requests it expects, in order, with the
//! answers to give, then checks that no further request came.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use kube::client::Body;
use marie_kubernetes::KubernetesBackend;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle, SendResponse};

/// The namespace the tests' Deployments live in.
pub const NAMESPACE: &str = "marie";
/// The address error messages name.
pub const ADDRESS: &str = "https://10.96.0.1:443";
/// The pool the tests scale.
pub const POOL: &str = "extract";
/// `/scale` of the pool's Deployment.
pub const SCALE_PATH: &str =
    "/apis/apps/v1/namespaces/marie/deployments/marie-executor-extract/scale";
/// The selector the render gives the pool's pods.
pub const SELECTOR: &str = "app=marie-executor,marie.ai/pool=extract";

/// Bounds every wait on the backend or the script: a call the script does not get
/// fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the mocked API server answers with: a whole body, or one it streams.
pub type Answer = Response<UnsyncBoxBody<Bytes, Infallible>>;

/// The script's end of the mocked API server.
pub type ApiHandle = Handle<Request<Body>, Answer>;

/// Where the script sends its answer to one request.
pub type Reply = SendResponse<Answer>;

/// A request as the API server got it.
pub struct Seen {
    pub method: http::Method,
    pub uri: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

/// A backend for pool `extract` in namespace `marie` on a mocked API server.
fn backend() -> (KubernetesBackend, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Answer>();
    let client = kube::Client::new(service, NAMESPACE);
    (
        KubernetesBackend::new(client, NAMESPACE, ADDRESS, [POOL]),
        handle,
    )
}

/// Runs `script` at the API server's end of a backend (pool `extract`, namespace
/// `marie`) while `call` runs on the backend; returns what `call` returned once the
/// script is done and no other request came (one more request fails the test at once:
/// the script's end panics and drops it).
pub async fn run<S, F, T>(
    script: impl FnOnce(ApiHandle) -> S,
    call: impl FnOnce(KubernetesBackend) -> F,
) -> T
where
    S: Future<Output = ApiHandle> + Send + 'static,
    F: Future<Output = T>,
{
    let (backend, handle) = backend();
    let script = script(handle);
    let server: JoinHandle<()> = tokio::spawn(async move {
        let mut handle = script.await;
        // The backend is dropped with `call`, which ends the requests.
        if let Some((request, _)) = handle.next_request().await {
            panic!("unexpected request: {} {}", request.method(), request.uri());
        }
    });
    let result = tokio::time::timeout(PATIENCE, call(backend))
        .await
        .expect("the backend's call never finished");
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the API server did not get the requests it expected")
        .expect("the API server's script failed");
    result
}

/// The next request, read in full.
pub async fn next(handle: &mut ApiHandle) -> (Seen, Reply) {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the backend made fewer requests than expected");
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.expect("request body");
    let seen = Seen {
        method: parts.method,
        uri: parts.uri.to_string(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|value| value.to_str().expect("content type").to_string()),
        body: (!bytes.is_empty())
            .then(|| serde_json::from_slice(&bytes).expect("the request body is JSON")),
    };
    (seen, send)
}

/// Answers with `status` and JSON `body`.
pub fn answer(send: Reply, status: StatusCode, body: &Value) {
    answer_bytes(send, status, serde_json::to_vec(body).expect("JSON"));
}

/// Answers with `status` and `body` as it is.
pub fn answer_bytes(send: Reply, status: StatusCode, body: Vec<u8>) {
    send.send_response(response(
        status,
        Full::new(Bytes::from(body)).boxed_unsync(),
    ));
}

/// Answers 200 with a body streamed through the sender returned, and ended when the
/// sender is dropped (a watch).
pub fn answer_stream(send: Reply) -> Sender<Bytes, Infallible> {
    let (sender, body) = Channel::new(8);
    send.send_response(response(StatusCode::OK, body.boxed_unsync()));
    sender
}

fn response(status: StatusCode, body: UnsyncBoxBody<Bytes, Infallible>) -> Answer {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("response")
}

/// Expects `GET /scale` and answers with `replicas` (left out when `None`, as the API
/// server leaves out a zero) at `resource_version`.
pub async fn expect_scale_get(
    handle: &mut ApiHandle,
    replicas: Option<u32>,
    resource_version: &str,
) {
    let (seen, send) = next(handle).await;
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(seen.uri, SCALE_PATH);
    answer(send, StatusCode::OK, &scale(replicas, resource_version));
}

/// Expects the conflict-checked `PATCH /scale` to `replicas` at `resource_version`.
pub async fn expect_scale_patch(handle: &mut ApiHandle, replicas: u32, resource_version: &str) {
    let patch = json!({
        "metadata": { "resourceVersion": resource_version },
        "spec": { "replicas": replicas },
    });
    let send = expect_merge_patch(handle, &format!("{SCALE_PATH}?"), patch).await;
    answer(send, StatusCode::OK, &scale(Some(replicas), "99"));
}

/// Expects a JSON merge patch of `path` with `patch`; returns where to answer it.
pub async fn expect_merge_patch(handle: &mut ApiHandle, path: &str, patch: Value) -> Reply {
    let (seen, send) = next(handle).await;
    assert_eq!(seen.method, http::Method::PATCH);
    assert_eq!(seen.uri, path);
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert_eq!(seen.body, Some(patch));
    send
}

/// A Scale of the pool's Deployment.
pub fn scale(replicas: Option<u32>, resource_version: &str) -> Value {
    let mut spec = json!({});
    if let Some(replicas) = replicas {
        spec["replicas"] = json!(replicas);
    }
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": "marie-executor-extract",
            "namespace": NAMESPACE,
            "resourceVersion": resource_version,
        },
        "spec": spec,
        "status": { "replicas": replicas.unwrap_or(0), "selector": SELECTOR },
    })
}

/// A pod of the pool, Ready or not.
pub fn pod(name: &str, resource_version: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "resourceVersion": resource_version,
            "labels": { "app": "marie-executor", "marie.ai/pool": POOL },
        },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        },
    })
}

/// A list of pods, as `GET …/pods` answers.
pub fn pod_list(pods: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": { "resourceVersion": "9" },
        "items": pods,
    })
}

/// A `metav1.Status` error, as the API server sends it.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}
