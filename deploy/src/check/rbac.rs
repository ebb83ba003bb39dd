//! Rules on who may call the Kubernetes API: every pod runs as a ServiceAccount of its
//! own that exists (never `default`), a RoleBinding binds a Role and ServiceAccounts
//! that exist, a Role's named Deployments exist, and a pod mounts a token exactly when
//! its ServiceAccount is bound to a Role.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;

use super::pods::{Workload, exists};
use super::{Document, Finding, report};

/// One decoded object and its namespace.
struct Decoded<'a, T> {
    doc: &'a Document,
    namespace: String,
    object: T,
}

/// The documents of `kind` in `rbac.authorization.k8s.io/v1` or `v1` (`api_version`),
/// decoded; one that does not decode is a finding.
fn decode<'a, T: DeserializeOwned>(
    docs: &'a [Document],
    api_version: &str,
    kind: &str,
    findings: &mut Vec<Finding>,
) -> Vec<Decoded<'a, T>> {
    let mut out = Vec::new();
    for doc in docs {
        if doc.value["apiVersion"].as_str() != Some(api_version) || doc.kind() != kind {
            continue;
        }
        match serde_json::from_value::<T>(doc.value.clone()) {
            Ok(object) => out.push(Decoded {
                doc,
                namespace: namespace_of(doc).to_owned(),
                object,
            }),
            Err(e) => report(findings, doc).fail(format!("does not decode: {e}")),
        }
    }
    out
}

fn namespace_of(doc: &Document) -> &str {
    doc.value["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
}

fn namespace_option(namespace: &str) -> Option<&str> {
    (!namespace.is_empty()).then_some(namespace)
}

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// The RBAC rules over `docs`.
pub fn check(docs: &[Document], workloads: &[Workload], findings: &mut Vec<Finding>) {
    let roles: Vec<Decoded<Role>> = decode(docs, RBAC, "Role", findings);
    let bindings: Vec<Decoded<RoleBinding>> = decode(docs, RBAC, "RoleBinding", findings);
    let accounts: Vec<Decoded<ServiceAccount>> = decode(docs, "v1", "ServiceAccount", findings);
    for binding in &bindings {
        check_binding(binding, docs, findings);
    }
    for role in &roles {
        check_role_targets(role, docs, findings);
    }
    for workload in workloads {
        check_pod_account(workload, &accounts, &bindings, findings);
    }
}

/// The ServiceAccounts a binding names, as (namespace, name).
fn bound_accounts<'a>(
    binding: &'a Decoded<RoleBinding>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    binding
        .object
        .subjects
        .iter()
        .flatten()
        .filter(|s| s.kind == "ServiceAccount")
        .map(|s| {
            let namespace = s.namespace.as_deref().unwrap_or(&binding.namespace);
            (namespace, s.name.as_str())
        })
}

/// A binding's Role (a ClusterRole may be built in) and ServiceAccounts exist.
fn check_binding(binding: &Decoded<RoleBinding>, docs: &[Document], findings: &mut Vec<Finding>) {
    let mut r = report(findings, binding.doc);
    let role_ref = &binding.object.role_ref;
    let namespace = namespace_option(&binding.namespace);
    if role_ref.kind == "Role" && !exists(docs, "Role", &role_ref.name, namespace) {
        r.fail(format!(
            "binds Role {:?}, which is not in the manifests: add the Role or fix roleRef.name",
            role_ref.name
        ));
    }
    for (account_namespace, name) in bound_accounts(binding) {
        if !exists(
            docs,
            "ServiceAccount",
            name,
            namespace_option(account_namespace),
        ) {
            r.fail(format!(
                "binds ServiceAccount {account_namespace}/{name}, which is not in the manifests: add it or fix the subject"
            ));
        }
    }
}

/// The Deployments a Role names (`apps` `deployments` or their subresources) exist in
/// its namespace.
fn check_role_targets(role: &Decoded<Role>, docs: &[Document], findings: &mut Vec<Finding>) {
    let mut r = report(findings, role.doc);
    for rule in role.object.rules.iter().flatten() {
        let apps = rule.api_groups.iter().flatten().any(|g| g == "apps");
        let deployments = rule
            .resources
            .iter()
            .flatten()
            .any(|res| res == "deployments" || res.starts_with("deployments/"));
        if !(apps && deployments) {
            continue;
        }
        for name in rule.resource_names.iter().flatten() {
            if !exists(docs, "Deployment", name, namespace_option(&role.namespace)) {
                r.fail(format!(
                    "grants {:?} on Deployment {name:?}, which is not in the manifests: the pool was renamed or removed; render again",
                    rule.verbs
                ));
            }
        }
    }
}

/// The pods run as a ServiceAccount of their own that exists, and mount its token
/// exactly when a RoleBinding grants it something.
fn check_pod_account(
    w: &Workload,
    accounts: &[Decoded<ServiceAccount>],
    bindings: &[Decoded<RoleBinding>],
    findings: &mut Vec<Finding>,
) {
    let mut r = report(findings, w.doc);
    let namespace = namespace_of(w.doc);
    let name = w.pod.service_account_name.as_deref().unwrap_or("default");
    if name == "default" {
        r.fail(
            "its pods run as the namespace's default ServiceAccount, which collects every grant made to it: set spec.template.spec.serviceAccountName to an account of their own",
        );
        return;
    }
    let Some(account) = accounts
        .iter()
        .find(|a| a.namespace == namespace && a.doc.name() == name)
    else {
        r.fail(format!(
            "its pods run as ServiceAccount {name:?}, which is not in the manifests: add it or fix serviceAccountName"
        ));
        return;
    };
    let mounts_token = w
        .pod
        .automount_service_account_token
        .or(account.object.automount_service_account_token)
        .unwrap_or(true);
    let role = bindings
        .iter()
        .find(|b| bound_accounts(b).any(|bound| bound == (namespace, name)))
        .map(|b| b.object.role_ref.name.as_str());
    match (mounts_token, role) {
        (true, None) => r.fail(format!(
            "its pods mount a token of ServiceAccount {name:?}, which no RoleBinding grants anything: set automountServiceAccountToken: false, or bind the account to the Role it needs"
        )),
        (false, Some(role)) => r.fail(format!(
            "ServiceAccount {name:?} is bound to {role:?} but its pods mount no token and cannot use it: set automountServiceAccountToken: true on the pod template"
        )),
        _ => {}
    }
}
