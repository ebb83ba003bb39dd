//! `?watch=true` on pods: newline-delimited `{"type":…,"object":…}` events, replayed from a
//! resourceVersion (or, without one, every matching pod as ADDED first), until
//! `timeoutSeconds` or the server stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::pods::Selection;
use crate::cluster::Cluster;
use crate::status::ApiError;
use crate::store::{Change, PodChange};

/// A watch without `timeoutSeconds` ends after this long.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

pub(super) fn stream(
    cluster: &Cluster,
    selection: Selection,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds \"{t}\": not a number"))
        })?),
        None => DEFAULT_TIMEOUT,
    };
    let since = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && *rv != "0");
    let since = since
        .map(|rv| {
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion \"{rv}\"")))
        })
        .transpose()?;
    let store = cluster.store();
    let (backlog, changes): (Vec<Bytes>, _) = match since {
        None => {
            let added = store
                .pods
                .values()
                .map(|r| &r.pod)
                .filter(|p| selection.matches(p));
            let added = added.map(|p| line("ADDED", &json!(p))).collect();
            (added, store.subscribe())
        }
        Some(rv) => match store.changes_since(rv) {
            Some((history, changes)) => (
                history
                    .iter()
                    .filter_map(|c| event(&selection, c))
                    .collect(),
                changes,
            ),
            None => {
                let status = ApiError::expired(format!(
                    "too old resource version: {rv} ({})",
                    store.resource_version()
                ));
                let body = line("ERROR", &status.to_status());
                return Ok(([(CONTENT_TYPE, "application/json")], body).into_response());
            }
        },
    };
    drop(store);
    let live = Live {
        changes,
        selection,
        deadline: Instant::now() + timeout,
        shutdown: cluster.shutdown.subscribe(),
    };
    let events = futures::stream::iter(backlog)
        .chain(futures::stream::unfold(live, Live::next))
        .map(Ok::<_, Infallible>);
    Ok((
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(events),
    )
        .into_response())
}

struct Live {
    changes: broadcast::Receiver<Arc<PodChange>>,
    selection: Selection,
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
}

impl Live {
    /// The next matching event; None ends the watch (timeout, shutdown, or a watcher too
    /// slow to keep up, which then watches again as kube does).
    async fn next(mut self) -> Option<(Bytes, Self)> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.shutdown.changed() => return None,
                change = self.changes.recv() => {
                    let line = event(&self.selection, &*change.ok()?);
                    if let Some(line) = line {
                        return Some((line, self));
                    }
                }
            }
        }
    }
}

/// The event a watcher with `selection` sees for `change`: a pod that starts matching is
/// ADDED, one that stops matching is DELETED, as the API server's watch cache reports it.
fn event(selection: &Selection, change: &PodChange) -> Option<Bytes> {
    let was = change
        .old
        .as_ref()
        .is_some_and(|p: &Pod| selection.matches(p));
    let is = selection.matches(&change.new);
    let kind = match (change.change, was, is) {
        (Change::Added, _, true) => "ADDED",
        (Change::Deleted, true, _) => "DELETED",
        (Change::Modified, true, true) => "MODIFIED",
        (Change::Modified, false, true) => "ADDED",
        (Change::Modified, true, false) => "DELETED",
        _ => return None,
    };
    Some(line(kind, &json!(change.new)))
}

fn line(kind: &str, object: &serde_json::Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}
