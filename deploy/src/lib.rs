//! Marie on Kubernetes and Docker Compose: every object a cluster needs, rendered from
//! the same `cluster.toml` a laptop uses plus its `[kubernetes]` section, and `check`,
//! a lint for what schemas miss and an API server or a controller would reject.
//!
//! `render` turns a [`Cluster`] into a [`Render`]: the manifests in apply order (one
//! YAML document each), the kustomization that lists them, the prometheus-adapter
//! rules when asked for, and warnings. [`compose`] writes the Compose file of the same
//! plan. The output is byte-stable: the same input renders the same bytes.
//!
//! May depend on: `k8s-openapi` (the objects), `serde`, `serde_json` and `serde_norway`
//! (the documents), `sha2` (the ConfigMap's content hash) and `thiserror`. Never on
//! another Marie crate: `marie-node` hands its configuration in as a [`Cluster`], so the
//! render runs no actor, store or runtime.

#![warn(missing_docs)]

pub mod check;
pub mod compose;
pub mod config;
mod dns;
pub mod input;
pub mod kube;
mod plan;
mod render;

pub use input::{Bounds, Cluster, Pool, Store, SupervisorBackend};
pub use plan::Refusal;
pub use render::{ADAPTER_RULES_FILE, Error, Render, render, rendered_files};
