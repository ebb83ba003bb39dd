//! Rules on workloads (Deployments, StatefulSets) and their pods: selectors that
//! match the template, port names, probes, a restricted security context, GPU pods
//! Guaranteed, a grace period that covers the node's shutdown, references to
//! ConfigMaps and Secrets that exist, one server per SQLite store, and no store URL
//! written into a manifest.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Document, Finding, Options, Report, report};
use crate::dns;
use crate::plan::{EXIT_SECS, GPU_RESOURCE, HTTP_CLOSE_SECS, grace_period_secs};

/// A Deployment or StatefulSet, decoded.
pub struct Workload<'a> {
    /// Its document.
    pub doc: &'a Document,
    /// `spec.replicas`.
    pub replicas: Option<i32>,
    /// `spec.selector`.
    pub selector: LabelSelector,
    /// The pod template's labels.
    pub pod_labels: BTreeMap<String, String>,
    /// The pod template's spec.
    pub pod: PodSpec,
    /// Names of a StatefulSet's volume claim templates: each pod's own volume.
    pub volume_claims: Vec<String>,
}

/// The workloads of `docs`; one that does not decode is a finding.
pub fn workloads<'a>(docs: &'a [Document], findings: &mut Vec<Finding>) -> Vec<Workload<'a>> {
    let mut out = Vec::new();
    for doc in docs {
        let decoded = match (doc.value["apiVersion"].as_str(), doc.kind()) {
            (Some("apps/v1"), "Deployment") => {
                serde_json::from_value::<Deployment>(doc.value.clone()).map(|d| {
                    d.spec
                        .map(|s| (s.replicas, s.selector, s.template, Vec::new()))
                })
            }
            (Some("apps/v1"), "StatefulSet") => {
                serde_json::from_value::<StatefulSet>(doc.value.clone()).map(|d| {
                    d.spec.map(|s| {
                        let claims = s
                            .volume_claim_templates
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c.metadata.name)
                            .collect();
                        (s.replicas, s.selector, s.template, claims)
                    })
                })
            }
            _ => continue,
        };
        match decoded {
            Ok(Some((replicas, selector, template, volume_claims))) => out.push(Workload {
                doc,
                replicas,
                selector,
                pod_labels: template.metadata.and_then(|m| m.labels).unwrap_or_default(),
                pod: template.spec.unwrap_or_default(),
                volume_claims,
            }),
            Ok(None) => report(findings, doc).fail("has no spec"),
            Err(e) => report(findings, doc).fail(format!("does not decode: {e}")),
        }
    }
    out
}

/// Whether `selector` selects pods labelled `labels` (matchLabels only).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn env_u64(container: &Container, name: &str) -> Option<u64> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse().ok())
}

/// Every rule on one workload.
pub fn check_workload(
    w: &Workload,
    docs: &[Document],
    options: &Options,
    findings: &mut Vec<Finding>,
) {
    let mut r = report(findings, w.doc);
    let match_labels = w.selector.match_labels.clone().unwrap_or_default();
    if !selects(&match_labels, &w.pod_labels) {
        r.fail(format!(
            "spec.selector {match_labels:?} does not select its own pods (labels {:?}): the API server refuses it",
            w.pod_labels
        ));
    }
    let pod_security = w.pod.security_context.clone().unwrap_or_default();
    for c in &w.pod.containers {
        check_port_names(c, &mut r);
        check_probes(c, &mut r);
        check_security_context(c, &pod_security, &mut r);
        check_gpu_guaranteed(c, &mut r);
        check_grace_period(c, &w.pod, &mut r);
        check_store_url(c, &mut r);
    }
    check_one_server_per_volume(w, &mut r);
    check_references(w, docs, options, &mut r);
}

/// Whether `c` runs a Marie node of `role` (`marie node --role ROLE`).
fn runs_role(c: &Container, role: &str) -> bool {
    let args = c.args.as_deref().unwrap_or_default();
    args.first().is_some_and(|a| a == "node")
        && args.windows(2).any(|w| w[0] == "--role" && w[1] == role)
}

/// A server StatefulSet with a volume per pod runs one pod: several would each own a
/// SQLite store of their own and run a CapacityManager each, two clusters in one.
fn check_one_server_per_volume(w: &Workload, r: &mut Report) {
    let replicas = w.replicas.unwrap_or(1);
    let is_server = w.pod.containers.iter().any(|c| runs_role(c, "server"));
    if is_server && replicas > 1 && !w.volume_claims.is_empty() {
        r.fail(format!(
            "runs {replicas} servers, each on a volume of its own ({}): two SQLite writers, two stores and two CapacityManagers; keep replicas: 1, or share a Postgres store (store.backend = \"postgres\", no volume claim, MARIE_STORE__URL from a Secret)",
            w.volume_claims.join(", ")
        ));
    }
}

/// The store's URL holds its password: from a Secret, never written in a manifest.
fn check_store_url(c: &Container, r: &mut Report) {
    let written = c
        .env
        .iter()
        .flatten()
        .any(|e| e.name == "MARIE_STORE__URL" && e.value.is_some());
    if written {
        r.fail(format!(
            "container {}: MARIE_STORE__URL is written in the manifest, password included: take it from a Secret (valueFrom.secretKeyRef, the key `url` of the store Secret)",
            c.name
        ));
    }
}

/// Port names the API server takes, each once.
fn check_port_names(c: &Container, r: &mut Report) {
    let mut seen = Vec::new();
    for name in c
        .ports
        .iter()
        .flatten()
        .filter_map(|port| port.name.as_ref())
    {
        if let Some(reason) = dns::port_name_error(name) {
            r.fail(format!("container {}: port name {name:?} {reason}", c.name));
        }
        if seen.contains(name) {
            r.fail(format!(
                "container {}: port name {name:?} is used twice",
                c.name
            ));
        }
        seen.push(name.clone());
    }
}

/// A readiness and a liveness probe.
fn check_probes(c: &Container, r: &mut Report) {
    for (probe, present) in [
        ("readinessProbe", c.readiness_probe.is_some()),
        ("livenessProbe", c.liveness_probe.is_some()),
    ] {
        if !present {
            r.fail(format!("container {} has no {probe}", c.name));
        }
    }
}

/// The restricted profile: not root, no privilege escalation, no capabilities, a
/// seccomp profile; the container's settings over the pod's.
fn check_security_context(c: &Container, pod_security: &PodSecurityContext, r: &mut Report) {
    let sc = c.security_context.clone().unwrap_or_default();
    let non_root = sc.run_as_non_root.or(pod_security.run_as_non_root) == Some(true);
    let user = sc.run_as_user.or(pod_security.run_as_user);
    if !non_root || user == Some(0) {
        r.fail(format!(
            "container {} may run as root: set runAsNonRoot: true and a non-zero runAsUser",
            c.name
        ));
    }
    if sc.allow_privilege_escalation != Some(false) {
        r.fail(format!(
            "container {}: set securityContext.allowPrivilegeEscalation: false",
            c.name
        ));
    }
    let drops_all = sc
        .capabilities
        .as_ref()
        .and_then(|caps| caps.drop.as_ref())
        .is_some_and(|d| d.iter().any(|c| c == "ALL"));
    if !drops_all {
        r.fail(format!("container {}: drop ALL capabilities", c.name));
    }
    let seccomp = sc
        .seccomp_profile
        .or(pod_security.seccomp_profile.clone())
        .map(|p| p.type_);
    if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
        r.fail(format!(
            "container {}: set seccompProfile.type: RuntimeDefault",
            c.name
        ));
    }
}

/// A container that uses a GPU has limits on cpu, memory and the GPU, and requests
/// equal to them (Guaranteed QoS).
fn check_gpu_guaranteed(c: &Container, r: &mut Report) {
    let resources = c.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    if !requests.contains_key(GPU_RESOURCE) && !limits.contains_key(GPU_RESOURCE) {
        return;
    }
    for name in ["cpu", "memory", GPU_RESOURCE] {
        let (req, lim) = (requests.get(name), limits.get(name));
        if lim.is_none() || (req.is_some() && req != lim) {
            r.fail(format!(
                "container {} uses a GPU but is not Guaranteed: {name} needs a limit and a request equal to it",
                c.name
            ));
        }
    }
}

/// A node's grace period covers its shutdown delay, HTTP close, drain and exit, as its
/// environment sets them.
fn check_grace_period(c: &Container, pod: &PodSpec, r: &mut Report) {
    if !c.args.iter().flatten().any(|a| a == "node") {
        return;
    }
    let delay = env_u64(c, "MARIE_NODE__SHUTDOWN_DELAY_SECS").unwrap_or(0);
    let drain = env_u64(c, "MARIE_NODE__DRAIN_TIMEOUT_SECS").unwrap_or(30);
    let needed = grace_period_secs(delay, drain);
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    if grace < i64::try_from(needed).unwrap_or(i64::MAX) {
        r.fail(format!(
            "terminationGracePeriodSeconds {grace} is under the shutdown delay ({delay}) + drain ({drain}) + {} = {needed}: the node is killed mid-drain",
            HTTP_CLOSE_SECS + EXIT_SECS
        ));
    }
}

/// Whether `docs` hold a `kind` named `name` in `namespace`.
pub(super) fn exists(docs: &[Document], kind: &str, name: &str, namespace: Option<&str>) -> bool {
    docs.iter().any(|d| {
        d.kind() == kind
            && d.name() == name
            && d.value["metadata"]["namespace"].as_str() == namespace
    })
}

fn check_references(w: &Workload, docs: &[Document], options: &Options, r: &mut Report) {
    let namespace = w.doc.value["metadata"]["namespace"].as_str();
    let mut config_maps = Vec::new();
    let mut secrets = Vec::new();
    for volume in w.pod.volumes.iter().flatten() {
        config_maps.extend(volume.config_map.as_ref().map(|c| c.name.clone()));
        secrets.extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
    }
    for c in &w.pod.containers {
        for var in c.env.iter().flatten() {
            let from = var.value_from.as_ref();
            config_maps.extend(
                from.and_then(|f| f.config_map_key_ref.as_ref())
                    .map(|k| k.name.clone()),
            );
            secrets.extend(
                from.and_then(|f| f.secret_key_ref.as_ref())
                    .map(|k| k.name.clone()),
            );
        }
        for source in c.env_from.iter().flatten() {
            config_maps.extend(source.config_map_ref.as_ref().map(|c| c.name.clone()));
            secrets.extend(source.secret_ref.as_ref().map(|s| s.name.clone()));
        }
    }
    for name in config_maps {
        if !exists(docs, "ConfigMap", &name, namespace) {
            r.fail(format!(
                "references ConfigMap {name:?}, which is not in the manifests"
            ));
        }
    }
    for name in secrets {
        if !exists(docs, "Secret", &name, namespace) && !options.external_secrets.contains(&name) {
            r.fail(format!(
                "references Secret {name:?}, which is not in the manifests: add it, or name it with --secret when it is created apart"
            ));
        }
    }
}
