//! The fake's HTTP surface: strict decoding, patch content types, resourceVersion
//! preconditions, the Status shape, RBAC from a Role in YAML.

mod support;

use marie_kube_fake::{FakeApiServer, Grant};
use serde_json::{Value, json};
use support::{NS, call, manifest, sleeping_pods, wait_for};

const MERGE: Option<&str> = Some("application/merge-patch+json");

const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: marie-supervisor, namespace: marie}
rules:
  - apiGroups: ["apps"]
    resources: ["deployments/scale"]
    resourceNames: ["marie-executor-extract"]
    verbs: ["get", "patch"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: marie-supervisor, namespace: marie}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: marie-supervisor}
subjects:
  - {kind: ServiceAccount, name: marie-server, namespace: marie}
"#;

async fn server_with_extract() -> FakeApiServer {
    let server = FakeApiServer::start(sleeping_pods())
        .await
        .expect("server starts");
    let applied = server
        .apply_yaml(&manifest(
            "k8s/examples/full/deployment-marie-executor-extract.yaml",
        ))
        .expect("the rendered Deployment decodes strictly");
    assert_eq!(applied, ["Deployment/marie-executor-extract"]);
    server
}

fn scale_url(server: &FakeApiServer, deployment: &str) -> String {
    format!(
        "{}/apis/apps/v1/namespaces/{NS}/deployments/{deployment}/scale",
        server.url()
    )
}

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["metadata"], json!({}), "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn scale_reads_as_autoscaling_v1_with_the_selector_string() {
    let server = server_with_extract().await;
    let (status, scale) = call(
        "GET",
        &scale_url(&server, "marie-executor-extract"),
        Some(server.admin_token()),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{scale}");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(
        scale["spec"]["replicas"], 1,
        "a Deployment without replicas defaults to 1"
    );
    assert_eq!(
        scale["status"]["selector"],
        "app=marie-executor,marie.ai/pool=extract"
    );
    assert!(
        scale["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    );

    let (status, missing) = call(
        "GET",
        &scale_url(&server, "nope"),
        Some(server.admin_token()),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_status(&missing, 404, "NotFound");
    assert_eq!(missing["message"], "deployments.apps \"nope\" not found");
    let (status, unknown) = call(
        "GET",
        &format!("{}/apis/batch/v1/jobs", server.url()),
        Some(server.admin_token()),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_status(&unknown, 404, "NotFound");
    server.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_a_strict_decoding_error() {
    let server = server_with_extract().await;
    let url = scale_url(&server, "marie-executor-extract");
    let body = json!({"spec": {"replicas": 2, "replica": 3}});
    let (status, answer) = call("PATCH", &url, Some(server.admin_token()), MERGE, Some(body)).await;
    assert_eq!(status, 400);
    assert_status(&answer, 400, "BadRequest");
    assert_eq!(
        answer["message"],
        "strict decoding error: unknown field \"spec.replica\""
    );
    assert_eq!(
        server
            .deployment("marie-executor-extract")
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1)
    );

    let err = server
        .apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1, selector: {}, template: {}, extra: 1}\n")
        .expect_err("an unknown field in an applied object is refused");
    assert!(
        format!("{err:#}").contains("unknown field \"spec.extra\""),
        "{err:#}"
    );
    server.stop().await;
}

#[tokio::test]
async fn only_merge_patches_are_accepted() {
    let server = server_with_extract().await;
    let url = scale_url(&server, "marie-executor-extract");
    for content_type in [
        "application/json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    ] {
        let (status, answer) = call(
            "PATCH",
            &url,
            Some(server.admin_token()),
            Some(content_type),
            Some(json!({"spec": {"replicas": 2}})),
        )
        .await;
        assert_eq!(status, 415, "{content_type}");
        assert_status(&answer, 415, "UnsupportedMediaType");
    }
    let (status, answer) = call(
        "PATCH",
        &url,
        Some(server.admin_token()),
        MERGE,
        Some(json!({"spec": {"replicas": 0}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["spec"]["replicas"], 0);
    server.stop().await;
}

#[tokio::test]
async fn a_stale_resource_version_in_a_patch_is_a_conflict() {
    let server = server_with_extract().await;
    let url = scale_url(&server, "marie-executor-extract");
    let token = Some(server.admin_token());
    let (_, scale) = call("GET", &url, token, None, None).await;
    let read = scale["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    server.scale_by_admin("marie-executor-extract", 3).unwrap();

    let body = json!({"metadata": {"resourceVersion": read}, "spec": {"replicas": 2}});
    let (status, answer) = call("PATCH", &url, token, MERGE, Some(body)).await;
    assert_eq!(status, 409, "{answer}");
    assert_status(&answer, 409, "Conflict");
    assert_eq!(
        answer["message"],
        "Operation cannot be fulfilled on deployments.apps \"marie-executor-extract\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(
        answer["details"],
        json!({"name": "marie-executor-extract", "group": "apps", "kind": "deployments"})
    );
    assert_eq!(
        server
            .deployment("marie-executor-extract")
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(3)
    );

    // Read again, write with the current version: accepted, and the version moves on.
    let (_, scale) = call("GET", &url, token, None, None).await;
    let current = scale["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"metadata": {"resourceVersion": current}, "spec": {"replicas": 2}});
    let (status, answer) = call("PATCH", &url, token, MERGE, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["spec"]["replicas"], 2);
    assert_ne!(answer["metadata"]["resourceVersion"], json!(current));

    // PUT with the now stale version: also a conflict.
    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(5);
    let (status, _) = call("PUT", &url, token, Some("application/json"), Some(put)).await;
    assert_eq!(status, 409);
    server.stop().await;
}

#[tokio::test]
async fn rbac_follows_the_role_and_the_admin_bypasses_it() {
    let server = server_with_extract().await;
    server
        .apply_yaml(&manifest(
            "k8s/examples/full/deployment-marie-executor-cpu-general.yaml",
        ))
        .unwrap();
    server.apply_yaml(RBAC).unwrap();
    let sa = server.token("marie-server");
    let extract = scale_url(&server, "marie-executor-extract");
    let cpu = scale_url(&server, "marie-executor-cpu-general");

    let (status, _) = call("GET", &extract, sa, None, None).await;
    assert_eq!(status, 200);
    let (status, answer) = call(
        "PATCH",
        &extract,
        sa,
        MERGE,
        Some(json!({"spec": {"replicas": 2}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Another pool's Deployment: not in resourceNames.
    let (status, answer) = call(
        "PATCH",
        &cpu,
        sa,
        MERGE,
        Some(json!({"spec": {"replicas": 2}})),
    )
    .await;
    assert_eq!(status, 403);
    assert_status(&answer, 403, "Forbidden");
    assert_eq!(
        answer["message"],
        "deployments.apps \"marie-executor-cpu-general\" is forbidden: User \"system:serviceaccount:marie:marie-server\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"marie\""
    );
    // A verb the Role does not grant.
    let (status, _) = call(
        "PUT",
        &extract,
        sa,
        Some("application/json"),
        Some(json!({"spec": {"replicas": 1}})),
    )
    .await;
    assert_eq!(status, 403);
    let deployment = format!(
        "{}/apis/apps/v1/namespaces/{NS}/deployments/marie-executor-extract",
        server.url()
    );
    let (status, _) = call("GET", &deployment, sa, None, None).await;
    assert_eq!(status, 403, "the Deployment itself is not in the Role");
    // Another namespace.
    let (status, answer) = call(
        "GET",
        &format!("{}/api/v1/namespaces/other/pods", server.url()),
        sa,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        answer["message"],
        "pods is forbidden: User \"system:serviceaccount:marie:marie-server\" cannot list resource \"pods\" in API group \"\" in the namespace \"other\""
    );
    let pods = format!(
        "{}/api/v1/namespaces/{NS}/pods?labelSelector=app%3Dmarie-executor",
        server.url()
    );
    let (status, list) = call("GET", &pods, sa, None, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "PodList");
    let pod = wait_for(&server, "a pod of extract", || {
        server.pods("marie-executor-extract").first().cloned()
    })
    .await;
    let (status, _) = call(
        "DELETE",
        &format!("{}/api/v1/namespaces/{NS}/pods/{}", server.url(), pod.name),
        sa,
        None,
        None,
    )
    .await;
    assert_eq!(status, 403);

    // No token, an unknown token: 401.
    for token in [None, Some("not-a-token")] {
        let (status, answer) = call("GET", &extract, token, None, None).await;
        assert_eq!(status, 401);
        assert_status(&answer, 401, "Unauthorized");
    }
    // The admin may do anything.
    let (status, _) = call(
        "PATCH",
        &cpu,
        Some(server.admin_token()),
        MERGE,
        Some(json!({"spec": {"replicas": 0}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call("GET", &deployment, Some(server.admin_token()), None, None).await;
    assert_eq!(status, 200);

    let usage = server.rbac_usage();
    let grant = |rule: usize, verb: &str, resource: &str, name: Option<&str>| Grant {
        role: "Role marie/marie-supervisor".into(),
        rule,
        verb: verb.into(),
        api_group: if rule == 0 {
            "apps".into()
        } else {
            String::new()
        },
        resource: resource.into(),
        resource_name: name.map(String::from),
    };
    let extract_name = Some("marie-executor-extract");
    assert_eq!(
        usage.used,
        [
            grant(0, "get", "deployments/scale", extract_name),
            grant(0, "patch", "deployments/scale", extract_name),
            grant(1, "list", "pods", None)
        ]
    );
    assert_eq!(
        usage.unused,
        [
            grant(1, "get", "pods", None),
            grant(1, "watch", "pods", None),
            grant(1, "patch", "pods", None)
        ]
    );
    server.stop().await;
}
