//! `marie k8s check`: what JSON schemas miss and an API server or a controller would
//! reject, over any manifests — names and labels, port names, selectors that match
//! their pods, Service target ports that exist, one scaler per workload with a target
//! that exists and sane bounds, GPU pods Guaranteed, grace periods that cover the
//! drain, probes, a restricted security context, ConfigMaps/Secrets that exist, one
//! server per SQLite volume, no store URL written in a manifest, and RBAC: pods run as ServiceAccounts of their own that exist, bindings bind a Role and
//! accounts that exist, a Role's Deployments exist, a token is mounted exactly where a
//! Role is bound.
//!
//! Documents are read as JSON values; workloads are decoded into k8s-openapi types.

mod load;
mod objects;
mod pods;
mod rbac;
mod scalers;
mod services;

pub use load::{LoadError, load_dir, parse_stream};

/// One manifest document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Where it came from (a file name).
    pub source: String,
    /// Its content.
    pub value: serde_json::Value,
}

impl Document {
    /// `kind`, or empty.
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`, or empty.
    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Something a cluster would reject or get wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The document's source.
    pub source: String,
    /// `Kind/name`.
    pub object: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.object, self.message)
    }
}

/// What the lint knows beyond the documents.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Secrets created outside the manifests (`kubectl create secret`), which pods may
    /// reference.
    pub external_secrets: Vec<String>,
}

/// Collects findings against one document.
pub(crate) struct Report<'a> {
    findings: &'a mut Vec<Finding>,
    source: String,
    object: String,
}

impl Report<'_> {
    pub(crate) fn fail(&mut self, message: impl Into<String>) {
        self.findings.push(Finding {
            source: self.source.clone(),
            object: self.object.clone(),
            message: message.into(),
        });
    }
}

pub(crate) fn report<'a>(findings: &'a mut Vec<Finding>, doc: &Document) -> Report<'a> {
    Report {
        findings,
        source: doc.source.clone(),
        object: format!("{}/{}", doc.kind(), doc.name()),
    }
}

/// Every finding over `docs`, in document order.
pub fn check(docs: &[Document], options: &Options) -> Vec<Finding> {
    let mut findings = Vec::new();
    let workloads = pods::workloads(docs, &mut findings);
    for doc in docs {
        objects::check_metadata(doc, &mut findings);
    }
    for workload in &workloads {
        pods::check_workload(workload, docs, options, &mut findings);
    }
    services::check(docs, &workloads, &mut findings);
    scalers::check(docs, &workloads, &mut findings);
    rbac::check(docs, &workloads, &mut findings);
    findings
}
