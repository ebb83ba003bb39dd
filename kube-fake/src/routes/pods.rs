//! Core `v1` pods: list (or watch), get, merge-patch metadata, delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ListMeta};

use super::{authorize, watch};
use crate::cluster::Cluster;
use crate::decode::{json_body, merge_patch, stale, strict, to_value};
use crate::journal::TerminationCause;
use crate::kubelet;
use crate::pod;
use crate::rbac::User;
use crate::selector::{Fields, Labels};
use crate::status::{ApiError, Target};

pub(super) fn target(name: &str) -> Target<'_> {
    Target {
        group: "",
        resource: "pods",
        name,
    }
}

/// The selectors of a list or watch request.
pub(super) struct Selection {
    pub namespace: String,
    pub labels: Labels,
    pub fields: Fields,
}

impl Selection {
    fn parse(namespace: String, query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let labels = Labels::parse(query.get("labelSelector").map_or("", String::as_str))?;
        let fields = Fields::parse(query.get("fieldSelector").map_or("", String::as_str))?;
        Ok(Selection {
            namespace,
            labels,
            fields,
        })
    }

    pub fn matches(&self, pod: &Pod) -> bool {
        let meta = &pod.metadata;
        meta.namespace.as_deref() == Some(&self.namespace)
            && self.labels.matches(meta.labels.as_ref())
            && self.fields.matches(
                meta.name.as_deref().unwrap_or_default(),
                &self.namespace,
                pod::phase(pod),
            )
    }
}

pub(super) async fn list_or_watch(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path(ns): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let selection = Selection::parse(ns.clone(), &query)?;
    let verb = if watching { "watch" } else { "list" };
    let name = selection.fields.name().unwrap_or_default().to_string();
    authorize(&cluster, &user, verb, &ns, target(&name), None)?;
    if watching {
        return watch::stream(&cluster, selection, &query);
    }
    let store = cluster.store();
    let items = store
        .pods
        .values()
        .map(|r| &r.pod)
        .filter(|p| selection.matches(p))
        .cloned()
        .collect();
    let list = List::<Pod> {
        items,
        metadata: ListMeta {
            resource_version: Some(store.resource_version().to_string()),
            ..Default::default()
        },
    };
    Ok(Json(list).into_response())
}

pub(super) async fn get_pod(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Json<Pod>, ApiError> {
    authorize(&cluster, &user, "get", &ns, target(&name), None)?;
    let pod = cluster
        .store()
        .pods
        .get(&(ns, name.clone()))
        .map(|r| r.pod.clone());
    pod.map(Json)
        .ok_or_else(|| ApiError::not_found(target(&name)))
}

/// A merge patch of the pod's metadata (labels, annotations); its status is the kubelet's,
/// and its spec cannot change.
pub(super) async fn patch_pod(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Pod>, ApiError> {
    authorize(&cluster, &user, "patch", &ns, target(&name), None)?;
    let key = (ns, name.clone());
    let mut store = cluster.store();
    let current = store
        .pods
        .get(&key)
        .map(|r| r.pod.clone())
        .ok_or_else(|| ApiError::not_found(target(&name)))?;
    let mut patched = to_value(&current);
    merge_patch(&headers, &body, &mut patched)?;
    let mut wanted: Pod = strict(patched)?;
    validate(&current, &wanted)?;
    wanted.status = current.status.clone();
    let meta = &mut wanted.metadata;
    meta.uid = current.metadata.uid.clone();
    meta.creation_timestamp = current.metadata.creation_timestamp.clone();
    meta.deletion_timestamp = current.metadata.deletion_timestamp.clone();
    meta.deletion_grace_period_seconds = current.metadata.deletion_grace_period_seconds;
    meta.resource_version = current.metadata.resource_version.clone();
    store.update_pod(&key, |r| r.pod = wanted);
    cluster.changed.notify_one();
    let pod = store.pods.get(&key).map(|r| r.pod.clone());
    pod.map(Json)
        .ok_or_else(|| ApiError::not_found(target(&name)))
}

/// What the API server refuses in a pod update.
fn validate(current: &Pod, wanted: &Pod) -> Result<(), ApiError> {
    let name = current.metadata.name.as_deref().unwrap_or_default();
    if wanted.metadata.name != current.metadata.name
        || wanted.metadata.namespace != current.metadata.namespace
    {
        return Err(ApiError::bad_request(format!(
            "the name or namespace of the object does not match the pod on the URL ({name})"
        )));
    }
    if stale(&wanted.metadata, &current.metadata) {
        return Err(ApiError::conflict(target(name)));
    }
    if wanted.spec != current.spec {
        return Err(ApiError::invalid(
            target(name),
            "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, \
             `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to \
             existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was \
             previously negative)",
        ));
    }
    let cost = wanted
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(pod::DELETION_COST));
    if let Some(cost) = cost.filter(|c| c.parse::<i32>().is_err()) {
        return Err(ApiError::invalid(
            target(name),
            &format!(
                "metadata.annotations[{}]: Invalid value: \"{cost}\": must be a 32bit integer",
                pod::DELETION_COST
            ),
        ));
    }
    Ok(())
}

/// Graceful deletion: the pod gets its deletionTimestamp and stays until its process is
/// gone; the ReplicaSet replaces it at once.
pub(super) async fn delete_pod(
    State(cluster): State<Arc<Cluster>>,
    Extension(user): Extension<User>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Pod>, ApiError> {
    authorize(&cluster, &user, "delete", &ns, target(&name), None)?;
    let options: DeleteOptions = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        strict(json_body(&body)?)?
    };
    let key = (ns, name.clone());
    let mut store = cluster.store();
    let current = store
        .pods
        .get(&key)
        .map(|r| r.pod.clone())
        .ok_or_else(|| ApiError::not_found(target(&name)))?;
    if let Some(pre) = &options.preconditions {
        let stale_uid = pre
            .uid
            .as_ref()
            .is_some_and(|u| Some(u) != current.metadata.uid.as_ref());
        let stale_rv = pre
            .resource_version
            .as_ref()
            .is_some_and(|v| Some(v) != current.metadata.resource_version.as_ref());
        if stale_uid || stale_rv {
            return Err(ApiError::conflict(target(&name)));
        }
    }
    let pod = kubelet::terminate(
        &cluster,
        &mut store,
        &key,
        TerminationCause::Deleted,
        options.grace_period_seconds,
    );
    cluster.changed.notify_one();
    pod.map(Json)
        .ok_or_else(|| ApiError::not_found(target(&name)))
}
