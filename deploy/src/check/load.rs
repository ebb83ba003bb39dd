//! Reading manifests: every `*.yaml`/`*.yml` file of a directory, each document of a
//! multi-document stream. Files without Kubernetes objects (a kustomization, Helm
//! values) are skipped.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Document;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or the directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A document is not YAML.
    #[error("{source_name} is not valid YAML: {error}")]
    Yaml {
        /// The file.
        source_name: String,
        /// The parser's message.
        error: serde_norway::Error,
    },
}

/// The documents of one YAML stream that are Kubernetes objects (have `apiVersion`
/// and `kind`).
pub fn parse_stream(source: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(de).map_err(|error| LoadError::Yaml {
            source_name: source.into(),
            error,
        })?;
        let is_object = value.get("apiVersion").is_some() && value.get("kind").is_some();
        if is_object && value["kind"] != "Kustomization" {
            docs.push(Document {
                source: source.into(),
                value,
            });
        }
    }
    Ok(docs)
}

/// Every object in the YAML files of `dir`, files in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<Document>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoadError::Io { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(io(&file))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        docs.extend(parse_stream(&name, &text)?);
    }
    Ok(docs)
}
