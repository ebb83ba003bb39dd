//! The Kubernetes objects of a plan, in apply order, each as one YAML document.

mod base;
mod container;
pub mod crd;
mod gateway;
mod monitoring;
pub mod pod;
mod pool;
mod rbac;
mod server;

use serde::Serialize;

pub use gateway::{proxy_body_size, proxy_timeout_secs};
pub use pool::keda_query;

use crate::plan::Plan;

/// A count or a number of seconds as the `int32` Kubernetes fields take, `i32::MAX` past
/// it.
fn to_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// One rendered object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Its kind (`Deployment`).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The YAML document.
    pub yaml: String,
}

impl Manifest {
    /// The file `--out DIR` writes it to: `<kind>-<name>.yaml`, lowercase.
    pub fn file_name(&self) -> String {
        format!("{}-{}.yaml", self.kind.to_lowercase(), self.name)
    }
}

fn manifest(
    kind: &str,
    name: &str,
    object: &impl Serialize,
) -> Result<Manifest, serde_norway::Error> {
    Ok(Manifest {
        kind: kind.into(),
        name: name.into(),
        yaml: serde_norway::to_string(object)?,
    })
}

/// Every object of `plan`.
pub fn manifests(plan: &Plan) -> Result<Vec<Manifest>, serde_norway::Error> {
    let mut out = Vec::new();
    if plan.cluster.kubernetes.create_namespace {
        let ns = base::namespace(plan);
        out.push(manifest(
            "Namespace",
            &plan.cluster.kubernetes.namespace,
            &ns,
        )?);
    }
    for account in base::service_accounts(plan) {
        let name = account.metadata.name.clone().unwrap_or_default();
        out.push(manifest("ServiceAccount", &name, &account)?);
    }
    if let Some(role) = rbac::role(plan) {
        out.push(manifest("Role", rbac::NAME, &role)?);
    }
    if let Some(binding) = rbac::role_binding(plan) {
        out.push(manifest("RoleBinding", rbac::NAME, &binding)?);
    }
    out.push(manifest(
        "ConfigMap",
        &plan.config_map,
        &base::config_map(plan),
    )?);
    out.push(manifest("Service", "marie-server", &server::service(plan))?);
    out.push(manifest(
        "StatefulSet",
        "marie-server",
        &server::stateful_set(plan),
    )?);
    if let Some(pdb) = server::pdb(plan) {
        out.push(manifest("PodDisruptionBudget", "marie-server", &pdb)?);
    }
    out.push(manifest(
        "Deployment",
        "marie-gateway",
        &gateway::deployment(plan),
    )?);
    out.push(manifest(
        "Service",
        "marie-gateway",
        &gateway::service(plan),
    )?);
    if let Some(hpa) = gateway::hpa(plan) {
        out.push(manifest("HorizontalPodAutoscaler", "marie-gateway", &hpa)?);
    }
    out.push(manifest(
        "PodDisruptionBudget",
        "marie-gateway-pdb",
        &gateway::pdb(plan),
    )?);
    if let Some(ingress) = gateway::ingress(plan) {
        out.push(manifest("Ingress", "marie-ingress", &ingress)?);
    }
    for pool in &plan.pools {
        let name = &pool.object_name;
        out.push(manifest("Deployment", name, &pool::deployment(plan, pool))?);
        out.push(manifest(
            "PodDisruptionBudget",
            name,
            &pool::pdb(plan, pool),
        )?);
        if let Some(scaled) = pool::scaled_object(plan, pool) {
            out.push(manifest("ScaledObject", name, &scaled)?);
        }
        if let Some(hpa) = pool::hpa(plan, pool) {
            out.push(manifest("HorizontalPodAutoscaler", name, &hpa)?);
        }
    }
    if let Some(monitor) = monitoring::pod_monitor(plan) {
        out.push(manifest("PodMonitor", "marie", &monitor)?);
    }
    if let Some(policy) = monitoring::network_policy(plan) {
        out.push(manifest("NetworkPolicy", "marie", &policy)?);
    }
    Ok(out)
}

/// `prometheus-adapter-rules.yaml`, when `prometheus.adapter_rules` is on.
pub fn adapter_rules(plan: &Plan) -> Result<Option<String>, serde_norway::Error> {
    monitoring::adapter_values(plan)
        .map(|values| serde_norway::to_string(&values))
        .transpose()
}
