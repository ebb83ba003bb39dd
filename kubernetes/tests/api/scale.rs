//! Reading and setting replicas through the Deployment's `/scale` subresource.

use marie_actors::supervisor::{ReplicaBackend, ReplicaError, ReplicaFailure};

use crate::support::*;

#[tokio::test]
async fn replicas_are_the_scale_subresources_spec_replicas() {
    let replicas = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(3), "41").await;
            handle
        },
        |backend| async move { backend.replicas(POOL).await },
    )
    .await;
    assert_eq!(replicas.expect("replicas"), 3);
}

#[tokio::test]
async fn replicas_left_out_of_the_scale_are_zero() {
    let replicas = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, None, "41").await;
            handle
        },
        |backend| async move { backend.replicas(POOL).await },
    )
    .await;
    assert_eq!(replicas.expect("replicas"), 0);
}

#[tokio::test]
async fn scaling_up_patches_the_scale_at_the_version_read() {
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(3), "41").await;
            expect_scale_patch(&mut handle, 5, "41").await;
            handle
        },
        |backend| async move { backend.set_replicas(POOL, 3, 5, &[]).await },
    )
    .await;
    set.expect("set replicas");
}

#[tokio::test]
async fn scaling_from_zero_reads_the_left_out_replicas_as_zero() {
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, None, "7").await;
            expect_scale_patch(&mut handle, 2, "7").await;
            handle
        },
        |backend| async move { backend.set_replicas(POOL, 0, 2, &[]).await },
    )
    .await;
    set.expect("set replicas");
}

#[tokio::test]
async fn another_writer_is_reported_and_nothing_is_written() {
    let set = run(
        |mut handle| async move {
            expect_scale_get(&mut handle, Some(5), "41").await;
            handle
        },
        |backend| async move {
            let leaving = ["marie-executor-extract-7d9f-abcde-extract-1".to_string()];
            backend.set_replicas(POOL, 3, 2, &leaving).await
        },
    )
    .await;
    match set {
        Err(ReplicaError::ScaledElsewhere {
            object,
            expected,
            found,
        }) => {
            assert_eq!(object, "deployment/marie-executor-extract");
            assert_eq!((expected, found), (3, 5));
        }
        other => panic!("expected ScaledElsewhere, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pool_the_backend_does_not_scale_is_refused_without_a_request() {
    let set = run(
        |handle| async move { handle },
        |backend| async move { backend.set_replicas("ocr", 1, 2, &[]).await },
    )
    .await;
    match set {
        Err(ReplicaError::Failed {
            object, kind, fix, ..
        }) => {
            assert_eq!(object, "deployment/marie-executor-ocr");
            assert_eq!(kind, ReplicaFailure::Refused);
            assert!(fix.contains("scaler = \"supervisor\""), "{fix}");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn the_object_is_the_pools_deployment_as_kubectl_names_it() {
    let (object, name) = run(
        |handle| async move { handle },
        |backend| async move { (backend.object(POOL), backend.name()) },
    )
    .await;
    assert_eq!(object, "deployment/marie-executor-extract");
    assert_eq!(name, "kubernetes");
}
