//! The entry point: a cluster in, its manifests out (as one stream, or as files with
//! a kustomization), or a refusal that says what to change.

use serde::{Deserialize, Serialize};

use crate::input::Cluster;
use crate::kube::{self, Manifest};
use crate::plan::{Plan, Refusal};

/// Why nothing was rendered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration contradicts itself or Kubernetes.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// An object did not serialise (a bug: every object is plain data).
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

/// The rendered cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Render {
    /// The objects, in apply order.
    pub manifests: Vec<Manifest>,
    /// The prometheus-adapter chart's rules, when asked for (not a Kubernetes object).
    pub adapter_rules: Option<String>,
    /// Things that render but deserve a look.
    pub warnings: Vec<String>,
}

/// The file holding the prometheus-adapter rules.
pub const ADAPTER_RULES_FILE: &str = "prometheus-adapter-rules.yaml";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
}

/// The files a render wrote into a folder, read from its `kustomization.yaml`: the
/// listed resources of that folder and the adapter's rules. Unreadable: none.
pub fn rendered_files(kustomization_yaml: &str) -> Vec<String> {
    let Ok(k) = serde_norway::from_str::<Kustomization>(kustomization_yaml) else {
        return Vec::new();
    };
    k.resources
        .into_iter()
        .filter(|r| !r.contains('/'))
        .chain([ADAPTER_RULES_FILE.to_owned()])
        .collect()
}

/// Renders `cluster`, or says why it cannot.
pub fn render(cluster: &Cluster) -> Result<Render, Error> {
    let plan = Plan::new(cluster)?;
    Ok(Render {
        manifests: kube::manifests(&plan)?,
        adapter_rules: kube::adapter_rules(&plan)?,
        warnings: plan.warnings.clone(),
    })
}

impl Render {
    /// Every object as one multi-document YAML stream.
    pub fn stream(&self) -> String {
        self.manifests
            .iter()
            .map(|m| m.yaml.as_str())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// The files of `--out DIR`: one per object, `kustomization.yaml` listing them,
    /// and the adapter's rules.
    pub fn files(&self) -> Result<Vec<(String, String)>, Error> {
        let mut files: Vec<(String, String)> = self
            .manifests
            .iter()
            .map(|m| (m.file_name(), m.yaml.clone()))
            .collect();
        let kustomization = Kustomization {
            api_version: "kustomize.config.k8s.io/v1beta1".into(),
            kind: "Kustomization".into(),
            resources: files.iter().map(|(name, _)| name.clone()).collect(),
        };
        files.push((
            "kustomization.yaml".into(),
            serde_norway::to_string(&kustomization)?,
        ));
        if let Some(rules) = &self.adapter_rules {
            files.push((ADAPTER_RULES_FILE.into(), rules.clone()));
        }
        Ok(files)
    }
}
