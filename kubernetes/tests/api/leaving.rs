//! Scaling down: the leaving executors' pods are marked with the lowest deletion cost
//! and, bounded, waited on until they read not Ready; then replicas go down.

use std::time::Duration;

use futures::FutureExt;
use http::StatusCode;
use marie_actors::supervisor::ReplicaBackend;
use marie_kubernetes::READY_WAIT;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::*;

const POD_A: &str = "marie-executor-extract-7d9f-aaaaa";
const POD_B: &str = "marie-executor-extract-7d9f-bbbbb";
const POD_C: &str = "marie-executor-extract-7d9f-ccccc";
const POD_D: &str = "marie-executor-extract-7d9f-ddddd";

/// The executor a pod's node runs.
fn executor(pod: &str) -> String {
    format!("{pod}-{POOL}-1")
}

/// Expects the list of the pool's pods by the scale's selector; answers with `pods`.
async fn expect_pods_list(handle: &mut ApiHandle, pods: Vec<Value>) {
    let (seen, send) = next(handle).await;
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(
        seen.uri,
        "/api/v1/namespaces/marie/pods?&labelSelector=app%3Dmarie-executor%2Cmarie.ai%2Fpool%3Dextract"
    );
    answer(send, StatusCode::OK, &pod_list(pods));
}

/// Expects the deletion-cost patch of `pod`; answers `status` with `answer_with`.
async fn expect_pod_mark(
    handle: &mut ApiHandle,
    pod: &str,
    status: StatusCode,
    answer_with: Value,
) {
    let path = format!("/api/v1/namespaces/marie/pods/{pod}?");
    let mark = json!({
        "metadata": {
            "annotations": { "controller.kubernetes.io/pod-deletion-cost": "-2147483648" }
        }
    });
    let send = expect_merge_patch(handle, &path, mark).await;
    answer(send, status, &answer_with);
}

/// Expects the watch of `pod` from `resource_version`; returns the answer's sender.
async fn expect_pod_watch(handle: &mut ApiHandle, pod: &str, resource_version: &str) -> Reply {
    let (seen, send) = next(handle).await;
    assert_eq!(seen.method, http::Method::GET);
    let (path, query) = seen.uri.split_once('?').expect("a query");
    assert_eq!(path, "/api/v1/namespaces/marie/pods");
    let mut pairs: Vec<&str> = query.split('&').filter(|pair| !pair.is_empty()).collect();
    pairs.sort_unstable();
    let field = format!("fieldSelector=metadata.name%3D{pod}");
    let version = format!("resourceVersion={resource_version}");
    let timeout = pairs
        .iter()
        .position(|pair| pair.starts_with("timeoutSeconds="))
        .map(|at| pairs.remove(at))
        .expect("timeoutSeconds");
    assert!(
        timeout == "timeoutSeconds=1" || timeout == "timeoutSeconds=2",
        "the watch is bounded by what is left of the wait: {timeout}"
    );
    assert_eq!(pairs, [field.as_str(), version.as_str(), "watch=true"]);
    send
}

/// One watch event, a line of the stream the API server sends.
fn event(kind: &str, object: Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("JSON");
    line.push(b'\n');
    line
}

// On a paused clock, time moves only while the backend and the script both wait: what
// the script sees after a sleep is what the backend did with everything before it.
#[tokio::test(start_paused = true)]
async fn a_leaving_pod_is_marked_and_waited_on_until_it_reads_not_ready() {
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(3), "41").await;
            expect_pods_list(
                &mut handle,
                vec![pod(POD_A, "10", true), pod(POD_B, "11", true)],
            )
            .await;
            expect_pod_mark(&mut handle, POD_A, StatusCode::OK, pod(POD_A, "12", true)).await;
            let send = expect_pod_watch(&mut handle, POD_A, "12").await;
            let watched = Instant::now();
            let mut events = answer_stream(send);
            // Another change that leaves it Ready: the backend keeps waiting.
            let still_ready = event("MODIFIED", pod(POD_A, "13", true));
            events
                .send_data(still_ready.into())
                .await
                .expect("event sent");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(
                handle.next_request().now_or_never().is_none(),
                "replicas went down while the leaving pod still read Ready"
            );
            // The drained node's readiness probe fails.
            let not_ready = event("MODIFIED", pod(POD_A, "14", false));
            events
                .send_data(not_ready.into())
                .await
                .expect("event sent");
            expect_scale_patch(&mut handle, 2, "41").await;
            assert!(
                watched.elapsed() < READY_WAIT,
                "the wait ends when the pod reads not Ready, not at its bound"
            );
            handle
        },
        |backend| async move { backend.set_replicas(POOL, 3, 2, &[executor(POD_A)]).await },
    )
    .await;
    set.expect("set replicas");
}

#[tokio::test]
async fn pods_not_ready_gone_or_not_the_pools_are_not_waited_on() {
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(4), "41").await;
            // POD_C is not among the Deployment's pods any more.
            expect_pods_list(
                &mut handle,
                vec![pod(POD_A, "10", false), pod(POD_D, "11", true)],
            )
            .await;
            // Already not Ready: marked, not watched.
            expect_pod_mark(&mut handle, POD_A, StatusCode::OK, pod(POD_A, "12", false)).await;
            // Gone between the list and the patch.
            let gone = status(404, "NotFound", &format!("pods \"{POD_D}\" not found"));
            expect_pod_mark(&mut handle, POD_D, StatusCode::NOT_FOUND, gone).await;
            expect_scale_patch(&mut handle, 0, "41").await;
            handle
        },
        |backend| async move {
            let leaving = [
                executor(POD_A),
                executor(POD_C),
                executor(POD_D),
                "laptop-extract-2".to_string(),
            ];
            backend.set_replicas(POOL, 4, 0, &leaving).await
        },
    )
    .await;
    set.expect("set replicas");
}

/// Scales 2 → 1 with the executor of Ready `POD_B` leaving; `watch` answers the
/// watch of its pod (what it returns is kept until replicas went down). Returns how
/// long after the watch began replicas went down.
async fn one_pod_leaving<W>(watch: impl FnOnce(Reply) -> W + Send + 'static) -> Duration
where
    W: Future<Output: Send> + Send + 'static,
{
    let (waited_tx, waited) = tokio::sync::oneshot::channel();
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(2), "41").await;
            expect_pods_list(&mut handle, vec![pod(POD_B, "10", true)]).await;
            expect_pod_mark(&mut handle, POD_B, StatusCode::OK, pod(POD_B, "12", true)).await;
            let send = expect_pod_watch(&mut handle, POD_B, "12").await;
            let watched = Instant::now();
            let kept = watch(send).await;
            expect_scale_patch(&mut handle, 1, "41").await;
            waited_tx.send(watched.elapsed()).expect("waited");
            drop(kept);
            handle
        },
        |backend| async move { backend.set_replicas(POOL, 2, 1, &[executor(POD_B)]).await },
    )
    .await;
    set.expect("set replicas");
    waited.await.expect("waited")
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_while_waited_on_ends_the_wait() {
    // The watch stays open after the event: only the event can end the wait.
    let waited = one_pod_leaving(|send| async move {
        let mut events = answer_stream(send);
        let deleted = event("DELETED", pod(POD_B, "13", true));
        events.send_data(deleted.into()).await.expect("event sent");
        events
    })
    .await;
    assert!(waited < READY_WAIT, "waited {waited:?} for a deleted pod");
}

#[tokio::test(start_paused = true)]
async fn replicas_go_down_when_the_watch_ends_with_the_pod_still_ready() {
    let waited = one_pod_leaving(|send| async move {
        answer_bytes(
            send,
            StatusCode::OK,
            event("MODIFIED", pod(POD_B, "13", true)),
        );
    })
    .await;
    assert!(
        waited < READY_WAIT,
        "waited {waited:?} after the watch ended"
    );
}

#[tokio::test(start_paused = true)]
async fn replicas_go_down_when_the_watch_never_answers() {
    let waited = one_pod_leaving(|unanswered| async move { unanswered }).await;
    assert!(
        waited >= READY_WAIT / 2 && waited <= READY_WAIT,
        "waited {waited:?} for a pod that never read not Ready"
    );
}
