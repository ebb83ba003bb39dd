//! A kubeconfig file pointing at the fake server, for clients that infer their
//! configuration (`KUBECONFIG`).

use std::path::Path;

use anyhow::Context;
use serde_json::json;

/// Writes a kubeconfig with one cluster (`server`), one user (`token`) and one current
/// context in `namespace`.
pub(crate) fn write(path: &Path, server: &str, namespace: &str, token: &str) -> anyhow::Result<()> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-fake", "cluster": {"server": server}}],
        "users": [{"name": "kube-fake-user", "user": {"token": token}}],
        "contexts": [{
            "name": "kube-fake",
            "context": {"cluster": "kube-fake", "user": "kube-fake-user", "namespace": namespace},
        }],
        "current-context": "kube-fake",
    });
    let yaml = serde_norway::to_string(&config).context("writing the kubeconfig as YAML")?;
    std::fs::write(path, yaml).with_context(|| format!("writing the kubeconfig {}", path.display()))
}
