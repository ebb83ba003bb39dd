//! Loading objects the way `kubectl apply` would: YAML documents (or JSON values), decoded
//! strictly into their Kubernetes types.

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Deserialize;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::decode::strict;
use crate::status::ApiError;

/// The kinds the server holds.
const SERVED: &str = "Deployment, Role, RoleBinding, ClusterRole, ClusterRoleBinding";

/// Applies every document of a YAML stream; returns `Kind/name` of each.
pub(crate) fn yaml(cluster: &Cluster, text: &str) -> anyhow::Result<Vec<String>> {
    let mut applied = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document)
            .with_context(|| format!("reading YAML document {}", index + 1))?;
        if !value.is_null() {
            applied.push(
                object(cluster, value)
                    .with_context(|| format!("applying YAML document {}", index + 1))?,
            );
        }
    }
    Ok(applied)
}

/// Applies one object; returns `Kind/name`.
pub(crate) fn object(cluster: &Cluster, value: Value) -> anyhow::Result<String> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let decoded = |e: ApiError| anyhow::anyhow!("{kind}: {}", e.message);
    let default_namespace = cluster.options.namespace.clone();
    let mut store = cluster.store();
    let name = match kind.as_str() {
        "Deployment" => {
            let mut deployment: Deployment = strict(value).map_err(decoded)?;
            let namespace = deployment
                .metadata
                .namespace
                .get_or_insert(default_namespace)
                .clone();
            let name = deployment
                .metadata
                .name
                .clone()
                .context("a Deployment without metadata.name")?;
            store.put_deployment((namespace, name.clone()), deployment);
            cluster.changed.notify_one();
            name
        }
        "Role" => {
            let role: Role = strict(value).map_err(decoded)?;
            let namespace = role.metadata.namespace.unwrap_or(default_namespace);
            let name = role.metadata.name.context("a Role without metadata.name")?;
            store
                .rbac
                .put_role(&namespace, &name, role.rules.unwrap_or_default());
            name
        }
        "ClusterRole" => {
            let role: ClusterRole = strict(value).map_err(decoded)?;
            let name = role
                .metadata
                .name
                .context("a ClusterRole without metadata.name")?;
            store
                .rbac
                .put_cluster_role(&name, role.rules.unwrap_or_default());
            name
        }
        "RoleBinding" => {
            let binding: RoleBinding = strict(value).map_err(decoded)?;
            let namespace = binding.metadata.namespace.unwrap_or(default_namespace);
            let name = binding
                .metadata
                .name
                .context("a RoleBinding without metadata.name")?;
            store.rbac.put_binding(
                Some(&namespace),
                &name,
                binding.role_ref,
                binding.subjects.unwrap_or_default(),
            );
            name
        }
        "ClusterRoleBinding" => {
            let binding: ClusterRoleBinding = strict(value).map_err(decoded)?;
            let name = binding
                .metadata
                .name
                .context("a ClusterRoleBinding without metadata.name")?;
            store.rbac.put_binding(
                None,
                &name,
                binding.role_ref,
                binding.subjects.unwrap_or_default(),
            );
            name
        }
        other => bail!("the fake API server does not hold kind \"{other}\"; it holds {SERVED}"),
    };
    Ok(format!("{kind}/{name}"))
}
