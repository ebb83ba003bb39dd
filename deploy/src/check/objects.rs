//! Rules on every object: its name and its labels.

use serde_json::Value;

use super::{Document, Finding, report};
use crate::dns;

/// Kinds whose names become DNS labels (a Service's DNS name, a StatefulSet's pods'
/// host names, a Namespace).
fn name_rule(kind: &str) -> fn(&str) -> Option<String> {
    match kind {
        "Service" => dns::service_name_error,
        "Namespace" | "StatefulSet" => dns::label_error,
        _ => dns::subdomain_error,
    }
}

fn check_labels(what: &str, labels: &Value, fail: &mut dyn FnMut(String)) {
    let Some(labels) = labels.as_object() else {
        return;
    };
    for (key, value) in labels {
        if let Some(reason) = dns::label_key_error(key) {
            fail(format!("{what} key {key:?} {reason}"));
        }
        match value.as_str() {
            Some(value) => {
                if let Some(reason) = dns::label_value_error(value) {
                    fail(format!("{what} {key}={value:?} {reason}"));
                }
            }
            None => fail(format!("{what} {key} must be a string, not {value}")),
        }
    }
}

/// Name and label rules of `doc`, and the labels of its pod template and selectors.
pub fn check_metadata(doc: &Document, findings: &mut Vec<Finding>) {
    let mut r = report(findings, doc);
    let name = doc.name();
    if name.is_empty() {
        r.fail("has no metadata.name");
    } else if let Some(reason) = name_rule(doc.kind())(name) {
        r.fail(format!("name {name:?} {reason}"));
    }
    let v = &doc.value;
    let mut fail = |m: String| r.fail(m);
    check_labels("label", &v["metadata"]["labels"], &mut fail);
    check_labels(
        "pod label",
        &v["spec"]["template"]["metadata"]["labels"],
        &mut fail,
    );
    check_labels("selector", &v["spec"]["selector"]["matchLabels"], &mut fail);
}
