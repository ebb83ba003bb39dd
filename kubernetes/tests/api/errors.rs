//! What the backend makes of the API server's refusals and of a lost connection: the
//! right kind, the object, and a message that says what to do.

use http::StatusCode;
use marie_actors::supervisor::{ReplicaBackend, ReplicaError, ReplicaFailure};
use serde_json::Value;

use crate::support::*;

const LEAVING_POD: &str = "marie-executor-extract-7d9f-aaaaa";

/// What a failed call reported.
struct Failure {
    object: String,
    kind: ReplicaFailure,
    problem: String,
    fix: String,
}

fn failure(result: Result<(), ReplicaError>) -> Failure {
    match result {
        Err(ReplicaError::Failed {
            object,
            kind,
            problem,
            fix,
        }) => Failure {
            object,
            kind,
            problem,
            fix,
        },
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Scales 3 → 2 and answers the `GET /scale` with `status` and `body`.
async fn scale_get_answered(status: StatusCode, body: Value) -> Failure {
    failure(
        run(
            |mut handle| async move {
                let (_, send) = next(&mut handle).await;
                answer(send, status, &body);
                handle
            },
            |backend| async move { backend.set_replicas(POOL, 3, 2, &[]).await },
        )
        .await,
    )
}

/// Scales 3 → 4 and answers the `PATCH /scale` with `status` and `body`.
async fn scale_patch_answered(status: StatusCode, body: Value) -> Failure {
    failure(
        run(
            |mut handle| async move {
                expect_scale_get(&mut handle, Some(3), "41").await;
                let (_, send) = next(&mut handle).await;
                answer(send, status, &body);
                handle
            },
            |backend| async move { backend.set_replicas(POOL, 3, 4, &[]).await },
        )
        .await,
    )
}

fn assert_mentions(text: &str, words: &[&str]) {
    for word in words {
        assert!(text.contains(word), "{text:?} does not mention {word:?}");
    }
}

#[tokio::test]
async fn forbidden_names_the_verb_and_the_role_that_grants_it() {
    let message = "deployments.apps \"marie-executor-extract\" is forbidden: User \"system:serviceaccount:marie:marie-server\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"marie\"";
    let failure =
        scale_patch_answered(StatusCode::FORBIDDEN, status(403, "Forbidden", message)).await;
    assert_eq!(failure.object, "deployment/marie-executor-extract");
    assert_eq!(failure.kind, ReplicaFailure::Forbidden);
    assert_mentions(&failure.problem, &["`patch deployments/scale`", message]);
    assert_mentions(
        &failure.fix,
        &[
            "marie-supervisor",
            "marie k8s render",
            "marie-server",
            "`patch deployments/scale`",
        ],
    );
}

#[tokio::test]
async fn forbidden_read_names_get() {
    let failure = scale_get_answered(
        StatusCode::FORBIDDEN,
        status(
            403,
            "Forbidden",
            "cannot get resource \"deployments/scale\"",
        ),
    )
    .await;
    assert_eq!(failure.kind, ReplicaFailure::Forbidden);
    assert_mentions(&failure.fix, &["`get deployments/scale`"]);
}

#[tokio::test]
async fn a_missing_deployment_says_to_apply_the_render_or_change_the_scaler() {
    let failure = scale_get_answered(
        StatusCode::NOT_FOUND,
        status(
            404,
            "NotFound",
            "deployments.apps \"marie-executor-extract\" not found",
        ),
    )
    .await;
    assert_eq!(failure.object, "deployment/marie-executor-extract");
    assert_eq!(failure.kind, ReplicaFailure::Missing);
    assert_mentions(&failure.problem, &["namespace marie", "not found"]);
    assert_mentions(&failure.fix, &["kubectl apply -k k8s/", "scaler"]);
}

#[tokio::test]
async fn a_write_after_a_change_is_a_conflict() {
    let failure = scale_patch_answered(
        StatusCode::CONFLICT,
        status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on deployments.apps \"marie-executor-extract\": the object has been modified; please apply your changes to the latest version and try again",
        ),
    )
    .await;
    assert_eq!(failure.kind, ReplicaFailure::Conflict);
    assert_mentions(&failure.problem, &["the object has been modified"]);
    assert_mentions(&failure.fix, &["read it again"]);
}

#[tokio::test]
async fn a_server_error_is_unreachable_with_the_address() {
    let failure = scale_get_answered(
        StatusCode::INTERNAL_SERVER_ERROR,
        status(500, "InternalError", "etcdserver: request timed out"),
    )
    .await;
    assert_eq!(failure.kind, ReplicaFailure::Unreachable);
    assert_mentions(
        &failure.problem,
        &[ADDRESS, "500", "etcdserver: request timed out"],
    );
    assert_mentions(&failure.fix, &[ADDRESS, "/readyz"]);
}

#[tokio::test]
async fn a_proxys_answer_that_is_not_a_status_still_says_what_came_back() {
    let failure = failure(
        run(
            |mut handle| async move {
                let (_, send) = next(&mut handle).await;
                answer_bytes(
                    send,
                    StatusCode::BAD_GATEWAY,
                    b"upstream connect error".to_vec(),
                );
                handle
            },
            |backend| async move { backend.set_replicas(POOL, 3, 4, &[]).await },
        )
        .await,
    );
    assert_eq!(failure.kind, ReplicaFailure::Unreachable);
    assert_mentions(&failure.problem, &["502", "upstream connect error"]);
}

#[tokio::test]
async fn any_other_refusal_carries_the_api_servers_message() {
    let message =
        "Scale.autoscaling \"marie-executor-extract\" is invalid: spec.replicas: Invalid value: -1";
    let failure = scale_patch_answered(
        StatusCode::UNPROCESSABLE_ENTITY,
        status(422, "Invalid", message),
    )
    .await;
    assert_eq!(failure.kind, ReplicaFailure::Refused);
    assert_mentions(
        &failure.problem,
        &["422", message, "`patch deployments/scale`"],
    );
}

#[tokio::test]
async fn a_dropped_connection_is_unreachable_with_the_address() {
    let failure = failure(
        run(
            |mut handle| async move {
                let (_, send) = next(&mut handle).await;
                send.send_error(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by peer",
                ));
                handle
            },
            |backend| async move { backend.set_replicas(POOL, 3, 4, &[]).await },
        )
        .await,
    );
    assert_eq!(failure.object, "deployment/marie-executor-extract");
    assert_eq!(failure.kind, ReplicaFailure::Unreachable);
    assert_mentions(
        &failure.problem,
        &[
            ADDRESS,
            "`get deployments/scale`",
            "connection reset by peer",
        ],
    );
    assert_mentions(&failure.fix, &[ADDRESS]);
}

/// Scales 3 → 2 with one Ready pod's executor leaving; the pods list is refused, or,
/// when `mark_refused`, the deletion-cost patch of the pod.
async fn scale_down_refused(mark_refused: bool) -> Failure {
    failure(
        run(
            move |mut handle| async move {
                expect_scale_get(&mut handle, Some(3), "41").await;
                let (_, send) = next(&mut handle).await;
                let send = if mark_refused {
                    answer(
                        send,
                        StatusCode::OK,
                        &pod_list(vec![pod(LEAVING_POD, "10", true)]),
                    );
                    next(&mut handle).await.1
                } else {
                    send
                };
                let refusal = status(403, "Forbidden", "cannot do that to resource \"pods\"");
                answer(send, StatusCode::FORBIDDEN, &refusal);
                handle
            },
            |backend| async move {
                let leaving = [format!("{LEAVING_POD}-{POOL}-1")];
                backend.set_replicas(POOL, 3, 2, &leaving).await
            },
        )
        .await,
    )
}

#[tokio::test]
async fn a_pod_mark_refused_stops_the_scale_down_and_names_the_pod() {
    let failure = scale_down_refused(true).await;
    assert_eq!(failure.object, format!("pod/{LEAVING_POD}"));
    assert_eq!(failure.kind, ReplicaFailure::Forbidden);
    assert_mentions(&failure.fix, &["`patch pods`", "marie-supervisor"]);
}

#[tokio::test]
async fn a_pods_list_refused_names_list() {
    let failure = scale_down_refused(false).await;
    assert_eq!(failure.object, format!("pods -l {SELECTOR}"));
    assert_eq!(failure.kind, ReplicaFailure::Forbidden);
    assert_mentions(&failure.fix, &["`list pods`"]);
}
