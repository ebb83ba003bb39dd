//! A backend built from a client configuration, against real sockets: the namespace it
//! picks, and a bounded call when the API server is down or stops answering.

use marie_actors::supervisor::{ReplicaBackend, ReplicaError, ReplicaFailure};
use marie_kubernetes::KubernetesBackend;
use tokio::net::TcpListener;

fn config(address: &str, default_namespace: &str) -> kube::Config {
    let mut config = kube::Config::new(address.parse().expect("address"));
    config.default_namespace = default_namespace.to_string();
    config
}

fn unreachable_at(result: Result<u32, ReplicaError>, address: &str) {
    match result {
        Err(ReplicaError::Failed {
            kind, problem, fix, ..
        }) => {
            assert_eq!(kind, ReplicaFailure::Unreachable, "{problem}");
            assert!(problem.contains(address), "{problem:?} names {address}");
            assert!(fix.contains(address), "{fix:?} names {address}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_namespace_is_the_configured_one_else_the_configurations() {
    let config = || config("http://127.0.0.1:6443", "team-a");
    let inferred = KubernetesBackend::from_config(config(), None, ["extract"]).expect("backend");
    assert_eq!(inferred.namespace(), "team-a");
    let set =
        KubernetesBackend::from_config(config(), Some("marie"), ["extract"]).expect("backend");
    assert_eq!(set.namespace(), "marie");
}

#[tokio::test]
async fn an_api_server_that_is_down_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}/", listener.local_addr().expect("address"));
    drop(listener);
    let backend = KubernetesBackend::from_config(config(&address, "marie"), None, ["extract"])
        .expect("backend");
    unreachable_at(backend.replicas("extract").await, &address);
}

#[tokio::test]
async fn an_api_server_that_stops_answering_cannot_hold_up_a_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = format!("http://{}/", listener.local_addr().expect("address"));
    // Accepts connections and never answers.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let backend = KubernetesBackend::from_config(config(&address, "marie"), None, ["extract"])
        .expect("backend");
    let result = tokio::time::timeout(
        marie_kubernetes::CALL_TIMEOUT * 6,
        backend.replicas("extract"),
    )
    .await
    .expect("the call is bounded by the client's timeouts");
    unreachable_at(result, &address);
    silent.abort();
}
