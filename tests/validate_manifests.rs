//! The deployment files pass every offline check this machine has, and each check can
//! fail: scripts/validate-manifests (Kubernetes 1.30/1.33/1.37 schemas strictly, the KEDA
//! and prometheus-operator CRDs with KEDA's CEL rules, `kubectl kustomize`,
//! `docker-compose config`, hadolint) over the committed `k8s/` renders, a fresh Compose
//! render and the Dockerfile, then over documents broken one way each.
//!
//! The checkers come from .venv/validate (scripts/setup-validate; scripts/test runs it);
//! the CRDs from ../shared/schemas.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{marie_bin, stderr, stdout};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Runs scripts/validate-manifests with `args` from the workspace root.
fn validate(args: &[&str]) -> Output {
    Command::new(root().join("scripts/validate-manifests"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run scripts/validate-manifests (needs python3)")
}

/// The report and errors of a run, for assertion messages.
fn transcript(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Asserts a run passed, and that it checked at least one object of every `kinds`.
fn assert_passed(out: &Output, kinds: &[&str]) {
    let text = transcript(out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "validate-manifests failed: {text}\n(scripts/setup-validate installs the checkers)"
    );
    for kind in kinds {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok ") && l.contains(&format!(": {kind}/"))),
            "no {kind} was checked: {text}"
        );
    }
}

/// Asserts a run failed its checks (exit 1, not 2: the check ran) with `reason`.
fn assert_failed(out: &Output, reason: &str) {
    let text = transcript(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a failed check: {text}"
    );
    assert!(text.contains(reason), "expected {reason:?} in: {text}");
}

/// `marie k8s render --format compose` of `config` (relative to the workspace root).
fn compose_render(config: &str) -> String {
    let out = Command::new(marie_bin())
        .args([
            "k8s", "render", "--format", "compose", "--out", "-", "--config", config,
        ])
        .current_dir(root())
        .output()
        .expect("run marie k8s render");
    assert!(out.status.success(), "render {config}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn the_committed_renders_a_fresh_compose_render_and_the_dockerfile_pass() {
    let dir = folder(&[
        ("compose.yaml", &compose_render("cluster.toml")),
        (
            "compose-full.yaml",
            &compose_render("k8s/examples/full.toml"),
        ),
        // full.toml stores in Postgres: its servers and gateways read the store's URL
        // from this env file beside the Compose file.
        (
            "marie-store.env",
            "MARIE_STORE__URL=postgres://marie:PASSWORD@db:5432/marie\n",
        ),
    ]);
    let out = validate(&[
        "k8s",
        "--compose",
        &path(&dir, "compose.yaml"),
        "--compose",
        &path(&dir, "compose-full.yaml"),
        "--dockerfile",
        "Dockerfile",
    ]);
    assert_passed(
        &out,
        &[
            "Namespace",
            "ServiceAccount",
            "ConfigMap",
            "Service",
            "StatefulSet",
            "Deployment",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Ingress",
            "NetworkPolicy",
            "ScaledObject",
            "PodMonitor",
            "Role",
            "RoleBinding",
        ],
    );
    let text = transcript(&out);
    for check in [
        "ok   kubectl kustomize k8s (",
        "ok   kubectl kustomize k8s/examples/full (",
        "ok   hadolint Dockerfile",
    ] {
        assert!(text.contains(check), "no {check:?} in: {text}");
    }
    assert_eq!(
        text.matches("ok   docker-compose config").count(),
        2,
        "{text}"
    );
}

/// A valid object of each kind the broken cases start from.
const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: marie-executor-extract, namespace: marie}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: marie}}
  template:
    metadata: {labels: {app.kubernetes.io/name: marie}}
    spec:
      containers:
        - name: marie
          image: marie:0.1.0
          ports: [{name: http, containerPort: 54322}]
"#;

const SCALED_OBJECT: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: marie-executor-gpu-ocr, namespace: marie}
spec:
  scaleTargetRef: {name: marie-executor-gpu-ocr}
  minReplicaCount: 0
  maxReplicaCount: 4
  cooldownPeriod: 300
  triggers:
    - type: prometheus
      name: marie-jobs-pending
      metadata:
        serverAddress: http://prometheus.monitoring.svc:9090
        query: sum(marie_jobs_pending{executor="gpu-ocr",namespace="marie"})
        threshold: "16"
"#;

const POD_MONITOR: &str = r#"apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata: {name: marie, namespace: marie}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: marie}}
  podMetricsEndpoints: [{port: http, path: /metrics, interval: 15s}]
"#;

const COMPOSE: &str = r#"services:
  marie-executor-extract:
    image: marie:0.1.0
    command: ["node", "--role", "executor", "--pool", "extract"]
    deploy:
      replicas: 2
    stop_grace_period: 50s
"#;

/// Writes `files` into a fresh folder; returns it.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write a test document");
    }
    dir
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

#[test]
fn the_documents_the_broken_cases_start_from_pass() {
    let dir = folder(&[
        (
            "objects.yaml",
            &[DEPLOYMENT, SCALED_OBJECT, POD_MONITOR].join("---\n"),
        ),
        (
            "kustomization.yaml",
            "resources: [objects.yaml]\nnamespace: marie\n",
        ),
        ("compose.yaml", COMPOSE),
    ]);
    let out = validate(&[
        &path(&dir, ""),
        "--compose",
        &path(&dir, "compose.yaml"),
        "--dockerfile",
        &root().join("Dockerfile").display().to_string(),
    ]);
    assert_passed(&out, &["Deployment", "ScaledObject", "PodMonitor"]);
    assert!(transcript(&out).contains("ok   kubectl kustomize"));
}

/// Checks one broken manifest on its own; asserts it fails with `reason`.
fn assert_refused(manifest: &str, reason: &str) {
    let dir = folder(&[("broken.yaml", manifest)]);
    assert_failed(&validate(&[&path(&dir, "broken.yaml")]), reason);
}

#[test]
fn a_misspelt_field_fails_on_every_kubernetes_version() {
    let misspelt = DEPLOYMENT.replace("  replicas: 1", "  replicsa: 1");
    for version in ["1.30.0", "1.33.0", "1.37.0"] {
        assert_refused(
            &misspelt,
            &format!(
                "{version}: spec: Additional properties are not allowed ('replicsa' was unexpected)"
            ),
        );
    }
}

#[test]
fn a_role_or_binding_with_a_misspelt_or_missing_field_fails() {
    let role = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: marie-supervisor, namespace: marie}
rules:
  - {apiGroups: [apps], resources: [deployments/scale], resourceNames: [marie-executor-extract], verbs: [get, patch]}
  - {apiGroups: [""], resources: [pods], verbs: [list, watch, patch]}
"#;
    let binding = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: marie-supervisor, namespace: marie}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: marie-supervisor}
subjects: [{kind: ServiceAccount, name: marie-server, namespace: marie}]
"#;
    let dir = folder(&[("rbac.yaml", &[role, binding].join("---\n"))]);
    assert_passed(
        &validate(&[&path(&dir, "rbac.yaml")]),
        &["Role", "RoleBinding"],
    );
    assert_refused(
        &role.replace("resourceNames:", "resourceName:"),
        "('resourceName' was unexpected)",
    );
    assert_refused(
        &role.replace(", verbs: [list, watch, patch]", ""),
        "'verbs' is a required property",
    );
    assert_refused(
        &binding.replace(
            "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: marie-supervisor}\n",
            "",
        ),
        "'roleRef' is a required property",
    );
}

#[test]
fn an_unknown_kind_fails() {
    assert_refused(
        &DEPLOYMENT.replace("kind: Deployment", "kind: Deploymnet"),
        "Couldn't find schema for kind Deploymnet",
    );
    assert_refused(
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: marie-gateway}\nspec: {minAvailable: 1}\n",
        "Couldn't find schema for kind PodDisruptionBudget with api version policy/v1beta1",
    );
}

#[test]
fn a_numeric_keda_threshold_fails() {
    assert_refused(
        &SCALED_OBJECT.replace(r#"threshold: "16""#, "threshold: 16"),
        "spec.triggers.0.metadata.threshold: 16 is not of type 'string'",
    );
}

#[test]
fn kedas_cel_rule_refuses_min_over_max() {
    assert_refused(
        &SCALED_OBJECT.replace("minReplicaCount: 0", "minReplicaCount: 5"),
        "spec: minReplicaCount must be less than or equal to maxReplicaCount",
    );
}

#[test]
fn unknown_fields_of_custom_resources_fail() {
    assert_refused(
        &SCALED_OBJECT.replace("cooldownPeriod", "coolDownPeriod"),
        "('coolDownPeriod' was unexpected)",
    );
    assert_refused(
        &POD_MONITOR.replace("interval: 15s", "interval: 15s, honorLabel: true"),
        "('honorLabel' was unexpected)",
    );
    assert_refused(
        &POD_MONITOR.replace("namespace: marie}", "namespace: marie, label: {a: b}}"),
        "metadata: Additional properties are not allowed ('label' was unexpected)",
    );
}

#[test]
fn a_kustomization_that_does_not_build_fails() {
    let dir = folder(&[
        ("objects.yaml", DEPLOYMENT),
        (
            "kustomization.yaml",
            "resources: [objects.yaml, missing.yaml]\n",
        ),
    ]);
    let out = validate(&[&path(&dir, "")]);
    assert_failed(&out, "FAIL kubectl kustomize");
    assert_failed(&out, "missing.yaml");
}

#[test]
fn a_compose_file_with_an_unknown_key_fails() {
    let dir = folder(&[(
        "compose.yaml",
        &COMPOSE.replace("replicas: 2", "replicas: 2\n      bogus: 1"),
    )]);
    let out = validate(&["--compose", &path(&dir, "compose.yaml")]);
    assert_failed(&out, "additional properties 'bogus' not allowed");
}

#[test]
fn a_dockerfile_finding_fails() {
    let dir = folder(&[(
        "Dockerfile",
        "FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n",
    )]);
    let out = validate(&["--dockerfile", &path(&dir, "Dockerfile")]);
    assert_failed(&out, "DL3007");
}

#[test]
fn missing_crds_are_an_error_not_a_pass() {
    let dir = folder(&[("so.yaml", SCALED_OBJECT)]);
    let out = validate(&["--schemas", &path(&dir, "nowhere"), &path(&dir, "so.yaml")]);
    assert_eq!(out.status.code(), Some(2), "{}", transcript(&out));
    assert!(
        stderr(&out).contains("keda.sh_scaledobjects.yaml") && stderr(&out).contains("are not in"),
        "{}",
        transcript(&out)
    );
}
