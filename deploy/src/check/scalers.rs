//! Rules on scalers (HPAs and KEDA ScaledObjects): each targets a workload that
//! exists, no workload has two, bounds are ordered, and a scaled Deployment has no
//! `replicas` field that every apply would reset.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use super::pods::Workload;
use super::{Document, Finding, report};
use crate::kube::crd::ScaledObject;

struct Scaled {
    kind: String,
    name: String,
    min: i64,
    max: i64,
}

fn decode(doc: &Document) -> Option<Result<Scaled, String>> {
    match (doc.value["apiVersion"].as_str(), doc.kind()) {
        (Some("autoscaling/v2"), "HorizontalPodAutoscaler") => Some(
            serde_json::from_value::<HorizontalPodAutoscaler>(doc.value.clone())
                .map_err(|e| e.to_string())
                .and_then(|h| h.spec.ok_or_else(|| "has no spec".to_owned()))
                .map(|s| Scaled {
                    kind: s.scale_target_ref.kind,
                    name: s.scale_target_ref.name,
                    min: i64::from(s.min_replicas.unwrap_or(1)),
                    max: i64::from(s.max_replicas),
                }),
        ),
        (Some("keda.sh/v1alpha1"), "ScaledObject") => Some(
            serde_json::from_value::<ScaledObject>(doc.value.clone())
                .map_err(|e| e.to_string())
                .map(|s| Scaled {
                    kind: s
                        .spec
                        .scale_target_ref
                        .kind
                        .unwrap_or_else(|| "Deployment".into()),
                    name: s.spec.scale_target_ref.name,
                    min: i64::from(s.spec.min_replica_count.unwrap_or(0)),
                    max: i64::from(s.spec.max_replica_count.unwrap_or(100)),
                }),
        ),
        _ => None,
    }
}

/// The scaler rules over `docs`.
pub fn check(docs: &[Document], workloads: &[Workload], findings: &mut Vec<Finding>) {
    let mut owners: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for doc in docs {
        let Some(decoded) = decode(doc) else { continue };
        let mut r = report(findings, doc);
        let scaled = match decoded {
            Ok(scaled) => scaled,
            Err(e) => {
                r.fail(format!("does not decode: {e}"));
                continue;
            }
        };
        if scaled.min > scaled.max {
            r.fail(format!(
                "min replicas {} is above max {}",
                scaled.min, scaled.max
            ));
        }
        let namespace = doc.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let target = workloads.iter().find(|w| {
            w.doc.kind() == scaled.kind
                && w.doc.name() == scaled.name
                && w.doc.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    == namespace
        });
        match target {
            None => r.fail(format!("targets {}/{}, which is not in the manifests", scaled.kind, scaled.name)),
            Some(w) if w.replicas.is_some() => r.fail(format!(
                "targets {}/{}, which sets spec.replicas: every apply resets the count this scaler chose; remove the field",
                scaled.kind, scaled.name
            )),
            Some(_) => {}
        }
        owners
            .entry((namespace, scaled.kind, scaled.name))
            .or_default()
            .push(format!("{}/{}", doc.kind(), doc.name()));
    }
    for ((_, kind, name), scalers) in owners {
        if scalers.len() > 1 {
            let doc = docs.iter().find(|d| d.kind() == kind && d.name() == name);
            if let Some(doc) = doc {
                report(findings, doc).fail(format!(
                    "is scaled by {} at once ({}): keep exactly one scaler per workload",
                    scalers.len(),
                    scalers.join(", ")
                ));
            }
        }
    }
}
