//! `apps/v1` Deployments: read one, and read and write its `/scale` subresource.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::Scale;

use super::authorize;
use crate::cluster::Cluster;
use crate::decode::{json_body, merge_patch, stale, strict, to_value};
use crate::rbac::User;
use crate::status::{ApiError, Target};

fn target(name: &str) -> Target<'_> {
    Target {
        group: "apps",
        resource: "deployments",
        name,
    }
}

pub(super) async fn get_deployment(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Deployment>, ApiError> {
    authorize(&cluster, &user, "get", &ns, target(&name), None)?;
    let deployment = cluster
        .store()
        .deployments
        .get(&(ns, name.clone()))
        .cloned();
    deployment
        .map(Json)
        .ok_or_else(|| ApiError::not_found(target(&name)))
}

pub(super) async fn get_scale(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Scale>, ApiError> {
    authorize(&cluster, &user, "get", &ns, target(&name), Some("scale"))?;
    let scale = cluster.store().scale(&(ns, name.clone()));
    scale
        .map(Json)
        .ok_or_else(|| ApiError::not_found(target(&name)))
}

/// A merge patch of the Scale; a `metadata.resourceVersion` in it is a precondition.
pub(super) async fn patch_scale(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Scale>, ApiError> {
    authorize(&cluster, &user, "patch", &ns, target(&name), Some("scale"))?;
    let key = (ns, name.clone());
    let mut store = cluster.store();
    let current = store
        .scale(&key)
        .ok_or_else(|| ApiError::not_found(target(&name)))?;
    let mut patched = to_value(&current);
    merge_patch(&headers, &body, &mut patched)?;
    let wanted: Scale = strict(patched)?;
    write(&cluster, &mut store, &key, &current, wanted, &user).map(Json)
}

/// A replacement of the Scale; a `metadata.resourceVersion` in it is a precondition.
pub(super) async fn put_scale(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Scale>, ApiError> {
    authorize(&cluster, &user, "update", &ns, target(&name), Some("scale"))?;
    let wanted: Scale = strict(json_body(&body)?)?;
    let key = (ns, name.clone());
    let mut store = cluster.store();
    let current = store
        .scale(&key)
        .ok_or_else(|| ApiError::not_found(target(&name)))?;
    write(&cluster, &mut store, &key, &current, wanted, &user).map(Json)
}

fn write(
    cluster: &Cluster,
    store: &mut crate::store::Store,
    key: &crate::store::Key,
    current: &Scale,
    wanted: Scale,
    user: &User,
) -> Result<Scale, ApiError> {
    let name = &key.1;
    if wanted.metadata.name.as_ref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            wanted.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    if stale(&wanted.metadata, &current.metadata) {
        return Err(ApiError::conflict(target(name)));
    }
    let replicas = wanted.spec.and_then(|s| s.replicas).unwrap_or(0);
    cluster.scale(store, key, replicas, &user.name)?;
    store
        .scale(key)
        .ok_or_else(|| ApiError::not_found(target(name)))
}
