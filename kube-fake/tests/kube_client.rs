//! kube's own client against the fake, configured from the kubeconfig the fake writes:
//! the Scale subresource, a conflict read as `kube::Error::Api`, a 403, pod list and watch.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use marie_kube_fake::FakeApiServer;
use serde_json::json;
use support::{NS, manifest, sleeping_pods, wait_for};

async fn client(server: &FakeApiServer, token: &str) -> kube::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, token).unwrap();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, NS);
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn kube_reads_and_writes_scale_and_pods() {
    let server = FakeApiServer::start(sleeping_pods()).await.unwrap();
    server
        .apply_yaml(&manifest(
            "k8s/examples/full/deployment-marie-executor-extract.yaml",
        ))
        .unwrap();
    let client = client(&server, server.admin_token()).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let name = "marie-executor-extract";

    let scale = deployments.get_scale(name).await.unwrap();
    assert_eq!(scale.spec.as_ref().unwrap().replicas, Some(1));
    let read = scale.metadata.resource_version.clone().unwrap();
    let patch = json!({"metadata": {"resourceVersion": read}, "spec": {"replicas": 2}});
    let scale = deployments
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));

    // The same (now stale) version again: 409, as kube::Error::Api.
    match deployments
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let pods: Api<Pod> = Api::default_namespaced(client);
    let selector = "app=marie-executor,marie.ai/pool=extract";
    wait_for(&server, "two pods", || {
        (server.pods(name).len() == 2).then_some(())
    })
    .await;
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let pod = list.items[0].metadata.name.clone().unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let cost = json!({"metadata": {"annotations": {"controller.kubernetes.io/pod-deletion-cost": "-2147483648"}}});
    pods.patch(&pod, &PatchParams::default(), &Patch::Merge(&cost))
        .await
        .unwrap();
    let params = WatchParams::default()
        .fields(&format!("metadata.name={pod}"))
        .timeout(5);
    let events: Vec<WatchEvent<Pod>> = pods
        .watch(&params, &rv)
        .await
        .unwrap()
        .take(1)
        .try_collect()
        .await
        .unwrap();
    match &events[..] {
        [WatchEvent::Modified(p)] => assert_eq!(
            p.metadata.annotations.as_ref().unwrap()["controller.kubernetes.io/pod-deletion-cost"],
            "-2147483648"
        ),
        other => panic!("expected one MODIFIED event, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn kube_reads_a_403_as_an_api_error() {
    let server = FakeApiServer::start(sleeping_pods()).await.unwrap();
    server
        .apply_yaml(&manifest(
            "k8s/examples/full/deployment-marie-executor-extract.yaml",
        ))
        .unwrap();
    let client = client(&server, server.token("marie-server").unwrap()).await;
    let deployments: Api<Deployment> = Api::default_namespaced(client);
    match deployments.get_scale("marie-executor-extract").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(
                status
                    .message
                    .contains("cannot get resource \"deployments/scale\""),
                "{}",
                status.message
            );
        }
        other => panic!("expected 403 without a Role, got {other:?}"),
    }
    server.stop().await;
}
