//! The objects every render has besides the workloads: the Namespace, the
//! ServiceAccounts and the ConfigMap holding `cluster.toml`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::pod::{common_labels, meta};
use super::rbac::SERVER_ACCOUNT;
use crate::plan::{Component, Plan};

/// The Namespace, with Pod Security Admission enforcing `restricted`.
pub fn namespace(plan: &Plan) -> Namespace {
    let mut labels = common_labels(None);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}"),
            "restricted".into(),
        );
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(plan.cluster.kubernetes.namespace.clone()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// `marie-server` (the server's) and `marie` (everyone else's). Only the server may
/// call the Kubernetes API, and only when the Supervisor scales a pool there: only
/// then does its account mount a token.
pub fn service_accounts(plan: &Plan) -> Vec<ServiceAccount> {
    [
        (
            SERVER_ACCOUNT,
            Some(Component::Server),
            plan.server_calls_api(),
        ),
        ("marie", None, false),
    ]
    .into_iter()
    .map(|(name, component, token)| ServiceAccount {
        metadata: meta(plan, name, component, None),
        automount_service_account_token: Some(token),
        ..ServiceAccount::default()
    })
    .collect()
}

/// `marie-config-<hash>`: the user's `cluster.toml`, verbatim and immutable.
pub fn config_map(plan: &Plan) -> ConfigMap {
    ConfigMap {
        metadata: meta(plan, &plan.config_map, None, None),
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            "cluster.toml".to_owned(),
            plan.cluster.cluster_toml.clone(),
        )])),
        ..ConfigMap::default()
    }
}
