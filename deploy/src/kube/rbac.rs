//! What the server may do through the Kubernetes API when the Supervisor scales pools
//! there: the Role `marie-supervisor` and its RoleBinding to the server's
//! ServiceAccount, and nothing more. Rendered only when some pool has
//! `scaler = "supervisor"` and `supervisor.backend = "kubernetes"`.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::pod::meta;
use crate::plan::{Component, Plan};

/// The Role and its RoleBinding.
pub const NAME: &str = "marie-supervisor";
/// The server's ServiceAccount, the Role's only subject.
pub const SERVER_ACCOUNT: &str = "marie-server";

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

/// The Role: read and set the scale of the supervisor-scaled pools' Deployments
/// (by name), and list, watch and mark (pod-deletion-cost) pods: exactly the calls of
/// the `kubernetes` backend (it never reads a pod by name).
pub fn role(plan: &Plan) -> Option<Role> {
    let deployments: Vec<String> = plan
        .supervisor_pools()
        .map(|p| p.object_name.clone())
        .collect();
    if deployments.is_empty() {
        return None;
    }
    Some(Role {
        metadata: meta(plan, NAME, Some(Component::Server), None),
        rules: Some(vec![
            PolicyRule {
                api_groups: strings(&["apps"]),
                resources: strings(&["deployments/scale"]),
                resource_names: Some(deployments),
                verbs: vec!["get".into(), "patch".into()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: strings(&[""]),
                resources: strings(&["pods"]),
                verbs: vec!["list".into(), "watch".into(), "patch".into()],
                ..PolicyRule::default()
            },
        ]),
    })
}

/// The RoleBinding of the Role to the server's ServiceAccount alone.
pub fn role_binding(plan: &Plan) -> Option<RoleBinding> {
    plan.server_calls_api().then(|| RoleBinding {
        metadata: meta(plan, NAME, Some(Component::Server), None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: SERVER_ACCOUNT.into(),
            namespace: Some(plan.cluster.kubernetes.namespace.clone()),
            ..Subject::default()
        }]),
    })
}
