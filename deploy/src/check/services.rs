//! Rules on Services and PodDisruptionBudgets: they select pods that some workload
//! makes, Service ports have valid names, and every target port exists in those pods.

use std::collections::BTreeMap;

use serde_json::Value;

use super::pods::{Workload, selects};
use super::{Document, Finding, report};
use crate::dns;

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The Service and PDB rules over `docs`.
pub fn check(docs: &[Document], workloads: &[Workload], findings: &mut Vec<Finding>) {
    for doc in docs {
        let (selector, is_service) = match doc.kind() {
            "Service" => (string_map(&doc.value["spec"]["selector"]), true),
            "PodDisruptionBudget" => (
                string_map(&doc.value["spec"]["selector"]["matchLabels"]),
                false,
            ),
            _ => continue,
        };
        let mut r = report(findings, doc);
        let namespace = doc.value["metadata"]["namespace"].as_str();
        let selected: Vec<&Workload> = workloads
            .iter()
            .filter(|w| w.doc.value["metadata"]["namespace"].as_str() == namespace)
            .filter(|w| selects(&selector, &w.pod_labels))
            .collect();
        if selected.is_empty() {
            r.fail(format!(
                "selector {selector:?} matches the pods of no workload in the manifests"
            ));
            continue;
        }
        if !is_service {
            continue;
        }
        for port in doc.value["spec"]["ports"].as_array().into_iter().flatten() {
            let name = port["name"].as_str().unwrap_or_default();
            if let Some(reason) = (!name.is_empty()).then(|| dns::label_error(name)).flatten() {
                r.fail(format!("port name {name:?} {reason}"));
            }
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            for w in &selected {
                let found = w
                    .pod
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|p| match target {
                        Value::String(s) => p.name.as_deref() == Some(s.as_str()),
                        Value::Number(n) => n.as_i64() == Some(i64::from(p.container_port)),
                        _ => false,
                    });
                if !found {
                    r.fail(format!(
                        "port {name:?} targets {target}, which no container of {}/{} declares",
                        w.doc.kind(),
                        w.doc.name()
                    ));
                }
            }
        }
    }
}
