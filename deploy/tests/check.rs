//! `check` over manifests broken one way each: every rule fires, with a message that
//! names the problem, and a clean render has no finding.

mod support;

use marie_deploy::SupervisorBackend;
use marie_deploy::check::{self, Document, Options};
use marie_deploy::config::Scaler;
use serde_json::{Value, json};

/// The render of a cluster with a KEDA, an HPA and a fixed pool.
fn docs() -> Vec<Document> {
    let mut c = support::cluster();
    c.supervisor_backend = SupervisorBackend::External;
    c.pools[0].autoscale = Some(support::bounds(1, 4, false));
    c.pools[0].kubernetes.scaler = Some(Scaler::Hpa);
    c.pools[2].autoscale = Some(support::bounds(1, 4, true));
    c.pools[2].kubernetes.scaler = Some(Scaler::Keda);
    let r = marie_deploy::render(&c).expect("renders");
    check::parse_stream("render", &r.stream()).expect("parses")
}

fn options() -> Options {
    Options {
        external_secrets: vec!["marie-cookie".into()],
    }
}

fn find<'a>(docs: &'a mut [Document], kind: &str, name: &str) -> &'a mut Value {
    &mut docs
        .iter_mut()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
        .value
}

/// Breaks the render with `edit`, checks it, and asserts a finding contains `expected`.
fn fires(edit: impl FnOnce(&mut Vec<Document>), expected: &str) {
    let mut d = docs();
    edit(&mut d);
    let findings = check::check(&d, &options());
    assert!(
        findings.iter().any(|f| f.to_string().contains(expected)),
        "no finding with {expected:?}: {findings:#?}"
    );
}

const GPU: &str = "marie-executor-gpu-ocr";
const CPU: &str = "marie-executor-cpu-general";

#[test]
fn a_clean_render_has_no_finding() {
    let findings = check::check(&docs(), &options());
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn bad_names_and_labels_are_found() {
    fires(
        |d| find(d, "Deployment", CPU)["metadata"]["name"] = json!("Marie_Executor"),
        "name \"Marie_Executor\"",
    );
    fires(
        |d| find(d, "Service", "marie-gateway")["metadata"]["name"] = json!("1gateway"),
        "must start with a letter",
    );
    fires(
        |d| {
            find(d, "Deployment", CPU)["metadata"]["labels"]["marie.ai/pool"] =
                json!("x".repeat(64))
        },
        "at most 63",
    );
    fires(
        |d| find(d, "Deployment", CPU)["metadata"]["labels"]["bad key!"] = json!("v"),
        "key \"bad key!\"",
    );
}

#[test]
fn a_long_port_name_is_found() {
    fires(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] =
                json!("cluster-port-of-marie")
        },
        "port name \"cluster-port-of-marie\"",
    );
}

#[test]
fn a_selector_that_misses_its_pods_is_found() {
    fires(
        |d| find(d, "Deployment", CPU)["spec"]["selector"]["matchLabels"]["app"] = json!("other"),
        "does not select its own pods",
    );
    fires(
        |d| find(d, "Service", "marie-gateway")["spec"]["selector"]["app"] = json!("nobody"),
        "matches the pods of no workload",
    );
    fires(
        |d| {
            find(d, "PodDisruptionBudget", GPU)["spec"]["selector"]["matchLabels"]["marie.ai/pool"] =
                json!("gone")
        },
        "matches the pods of no workload",
    );
}

#[test]
fn a_service_target_port_no_container_declares_is_found() {
    fires(
        |d| find(d, "Service", "marie-gateway")["spec"]["ports"][1]["targetPort"] = json!("web"),
        "targets \"web\"",
    );
    fires(
        |d| find(d, "Service", "marie-gateway")["spec"]["ports"][1]["targetPort"] = json!(8080),
        "targets 8080",
    );
}

#[test]
fn two_scalers_on_one_workload_are_found() {
    fires(
        |d| {
            let mut hpa = find(d, "HorizontalPodAutoscaler", CPU).clone();
            hpa["metadata"]["name"] = json!("second");
            hpa["spec"]["scaleTargetRef"]["name"] = json!(GPU);
            d.push(Document {
                source: "extra".into(),
                value: hpa,
            });
        },
        "is scaled by 2 at once",
    );
}

#[test]
fn a_scaler_without_its_target_or_with_bounds_upside_down_is_found() {
    fires(
        |d| find(d, "ScaledObject", GPU)["spec"]["scaleTargetRef"]["name"] = json!("missing"),
        "Deployment/missing, which is not in the manifests",
    );
    fires(
        |d| find(d, "HorizontalPodAutoscaler", CPU)["spec"]["minReplicas"] = json!(9),
        "min replicas 9 is above max 4",
    );
    fires(
        |d| find(d, "ScaledObject", GPU)["spec"]["minReplicaCount"] = json!(5),
        "min replicas 5 is above max 4",
    );
    fires(
        |d| find(d, "ScaledObject", GPU)["spec"]["coolDownPeriod"] = json!(5),
        "does not decode",
    );
}

#[test]
fn replicas_on_a_scaled_deployment_are_found() {
    fires(
        |d| find(d, "Deployment", GPU)["spec"]["replicas"] = json!(1),
        "remove the field",
    );
}

#[test]
fn a_gpu_pod_that_is_not_guaranteed_is_found() {
    fires(
        |d| {
            find(d, "Deployment", GPU)["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
                ["cpu"] = json!("1")
        },
        "not Guaranteed: cpu",
    );
}

#[test]
fn a_grace_period_shorter_than_the_shutdown_is_found() {
    fires(
        |d| {
            find(d, "Deployment", "marie-gateway")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] =
                json!(30)
        },
        "terminationGracePeriodSeconds 30 is under",
    );
}

#[test]
fn missing_probes_are_found() {
    fires(
        |d| {
            let c = &mut find(d, "Deployment", CPU)["spec"]["template"]["spec"]["containers"][0];
            c.as_object_mut()
                .expect("container")
                .remove("readinessProbe");
        },
        "has no readinessProbe",
    );
}

#[test]
fn a_security_context_short_of_restricted_is_found() {
    fires(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["containers"][0]["securityContext"]
                ["allowPrivilegeEscalation"] = json!(true)
        },
        "allowPrivilegeEscalation: false",
    );
    fires(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] =
                json!(false)
        },
        "may run as root",
    );
    fires(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
                ["type"] = json!("Unconfined")
        },
        "RuntimeDefault",
    );
    fires(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["containers"][0]["securityContext"]
                ["capabilities"]["drop"] = json!([])
        },
        "drop ALL",
    );
}

#[test]
fn references_to_missing_config_maps_and_secrets_are_found() {
    fires(
        |d| d.retain(|doc| doc.kind() != "ConfigMap"),
        "references ConfigMap",
    );
    let d = docs();
    let findings = check::check(&d, &Options::default());
    assert!(
        findings
            .iter()
            .any(|f| f.message.contains("Secret \"marie-cookie\"")),
        "{findings:#?}"
    );
}

#[test]
fn manifests_load_from_a_folder_skipping_the_kustomization() {
    let dir = tempfile::tempdir().expect("temp dir");
    let r = marie_deploy::render(&support::cluster()).expect("renders");
    for (name, content) in r.files().expect("files") {
        std::fs::write(dir.path().join(name), content).expect("write");
    }
    let loaded = check::load_dir(dir.path()).expect("loads");
    assert_eq!(loaded.len(), r.manifests.len());
    assert!(check::check(&loaded, &options()).is_empty());
    std::fs::write(dir.path().join("broken.yaml"), "kind: [").expect("write");
    assert!(check::load_dir(dir.path()).is_err());
}

/// The render of a cluster whose `extract` pool the Supervisor scales through the
/// Kubernetes API (a Role, its RoleBinding, a token on the server alone).
fn supervised_docs() -> Vec<Document> {
    let mut c = support::cluster();
    c.supervisor_backend = SupervisorBackend::Kubernetes;
    c.pools[1].autoscale = Some(support::bounds(0, 4, true));
    c.pools[1].kubernetes.scaler = Some(Scaler::Supervisor);
    let r = marie_deploy::render(&c).expect("renders");
    check::parse_stream("render", &r.stream()).expect("parses")
}

/// As [`fires`], over [`supervised_docs`].
fn fires_supervised(edit: impl FnOnce(&mut Vec<Document>), expected: &str) {
    let mut d = supervised_docs();
    edit(&mut d);
    let findings = check::check(&d, &options());
    assert!(
        findings.iter().any(|f| f.to_string().contains(expected)),
        "no finding with {expected:?}: {findings:#?}"
    );
}

const SUPERVISOR: &str = "marie-supervisor";
const EXTRACT: &str = "marie-executor-extract";

#[test]
fn a_clean_supervised_render_has_no_finding() {
    let d = supervised_docs();
    assert!(d.iter().any(|doc| doc.kind() == "Role"));
    let findings = check::check(&d, &options());
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn a_role_binding_to_a_missing_role_or_account_is_found() {
    fires_supervised(
        |d| d.retain(|doc| doc.kind() != "Role"),
        "binds Role \"marie-supervisor\", which is not in the manifests",
    );
    fires_supervised(
        |d| find(d, "RoleBinding", SUPERVISOR)["subjects"][0]["name"] = json!("marie-srv"),
        "binds ServiceAccount marie/marie-srv, which is not in the manifests",
    );
    fires_supervised(
        |d| find(d, "RoleBinding", SUPERVISOR)["subjects"][0]["namespace"] = json!("other"),
        "binds ServiceAccount other/marie-server",
    );
    fires_supervised(
        |d| find(d, "RoleBinding", SUPERVISOR)["roleRef"] = json!("marie-supervisor"),
        "RoleBinding/marie-supervisor: does not decode",
    );
}

#[test]
fn a_role_naming_a_deployment_that_is_not_there_is_found() {
    fires_supervised(
        |d| {
            find(d, "Role", SUPERVISOR)["rules"][0]["resourceNames"][0] =
                json!("marie-executor-gone")
        },
        "Deployment \"marie-executor-gone\", which is not in the manifests",
    );
    fires_supervised(
        |d| d.retain(|doc| !(doc.kind() == "Deployment" && doc.name() == EXTRACT)),
        "Deployment \"marie-executor-extract\", which is not in the manifests",
    );
}

#[test]
fn pods_on_the_default_or_a_missing_service_account_are_found() {
    fires_supervised(
        |d| {
            find(d, "Deployment", EXTRACT)["spec"]["template"]["spec"]
                .as_object_mut()
                .expect("pod spec")
                .remove("serviceAccountName");
        },
        "Deployment/marie-executor-extract: its pods run as the namespace's default ServiceAccount",
    );
    fires_supervised(
        |d| {
            find(d, "Deployment", CPU)["spec"]["template"]["spec"]["serviceAccountName"] =
                json!("default")
        },
        "default ServiceAccount",
    );
    fires_supervised(
        |d| d.retain(|doc| !(doc.kind() == "ServiceAccount" && doc.name() == "marie")),
        "its pods run as ServiceAccount \"marie\", which is not in the manifests",
    );
}

#[test]
fn a_token_without_a_role_or_a_role_without_a_token_is_found() {
    fires_supervised(
        |d| d.retain(|doc| doc.kind() != "RoleBinding"),
        "StatefulSet/marie-server: its pods mount a token of ServiceAccount \"marie-server\", which no RoleBinding grants anything",
    );
    fires_supervised(
        |d| {
            find(d, "Deployment", "marie-gateway")["spec"]["template"]["spec"]
                .as_object_mut()
                .expect("pod spec")
                .remove("automountServiceAccountToken");
            find(d, "ServiceAccount", "marie")["automountServiceAccountToken"] = json!(true);
        },
        "Deployment/marie-gateway: its pods mount a token of ServiceAccount \"marie\"",
    );
    fires_supervised(
        |d| {
            find(d, "StatefulSet", "marie-server")["spec"]["template"]["spec"]["automountServiceAccountToken"] =
                json!(false)
        },
        "ServiceAccount \"marie-server\" is bound to \"marie-supervisor\" but its pods mount no token",
    );
}
