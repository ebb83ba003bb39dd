//! Label and field selectors: the query strings of list and watch requests, and a
//! Deployment's `spec.selector` written as `status.selector`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::status::ApiError;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Labels(Vec<Requirement>);

impl Labels {
    /// Parses `app=x,tier in (a,b),!legacy` as the API server does.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let bad = |part: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: \"{part}\" in label selector \"{text}\""
            ))
        };
        let mut requirements = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_string())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().to_string(), value.trim().to_string())
            } else if let Some((key, values)) = set_requirement(part, " notin ") {
                Requirement::NotIn(key, values.ok_or_else(|| bad(part))?)
            } else if let Some((key, values)) = set_requirement(part, " in ") {
                Requirement::In(key, values.ok_or_else(|| bad(part))?)
            } else if part.contains([' ', '(', ')']) {
                return Err(bad(part));
            } else {
                Requirement::Exists(part.to_string())
            };
            requirements.push(requirement);
        }
        Ok(Labels(requirements))
    }

    /// The selector of `matchLabels` and `matchExpressions`.
    pub fn from_selector(selector: &LabelSelector) -> Self {
        let mut requirements: Vec<Requirement> = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
            .collect();
        for expression in selector.match_expressions.iter().flatten() {
            let key = expression.key.clone();
            let values = expression.values.clone().unwrap_or_default();
            requirements.push(match expression.operator.as_str() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                _ => Requirement::DoesNotExist(key),
            });
        }
        requirements.sort_by(|a, b| a.key().cmp(b.key()));
        Labels(requirements)
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let empty = BTreeMap::new();
        let labels = labels.unwrap_or(&empty);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        }
    }
}

impl std::fmt::Display for Labels {
    /// The string form the API server writes in a Scale's `status.selector`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => format!("{k}={v}"),
                Requirement::NotEquals(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// `key in (a,b)`: the key and the values (None when the set is malformed).
fn set_requirement(part: &str, operator: &str) -> Option<(String, Option<Vec<String>>)> {
    let (key, rest) = part.split_once(operator)?;
    let values = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(|inner| inner.split(',').map(|v| v.trim().to_string()).collect());
    Some((key.trim().to_string(), values))
}

/// A field selector over pods: `metadata.name`, `metadata.namespace` and `status.phase`,
/// with `=`, `==` and `!=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Fields(Vec<(String, bool, String)>);

impl Fields {
    /// Parses `metadata.name=x,status.phase!=Running`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !matches!(
                field,
                "metadata.name" | "metadata.namespace" | "status.phase"
            ) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Fields(terms))
    }

    /// The name a `metadata.name=` term pins the request to (RBAC's resourceName for list
    /// and watch).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, equal, _)| *equal && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Whether a pod's fields satisfy every term.
    pub fn matches(&self, name: &str, namespace: &str, phase: &str) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = match field.as_str() {
                "metadata.name" => name,
                "metadata.namespace" => namespace,
                _ => phase,
            };
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = Labels::parse("app=a,tier in (x, y),env notin (prod),has,!gone,v!=1").unwrap();
        assert!(s.matches(Some(&labels(&[
            ("app", "a"),
            ("tier", "y"),
            ("env", "dev"),
            ("has", ""),
            ("v", "2")
        ]))));
        assert!(!s.matches(Some(&labels(&[("app", "a"), ("tier", "z"), ("has", "")]))));
        assert!(!s.matches(Some(&labels(&[
            ("app", "a"),
            ("tier", "x"),
            ("has", ""),
            ("gone", "1")
        ]))));
        assert!(Labels::parse("a in x").is_err());
    }

    #[test]
    fn writes_match_labels_sorted_by_key() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[
                ("marie.ai/pool", "extract"),
                ("app", "marie-executor"),
            ])),
            ..Default::default()
        };
        assert_eq!(
            Labels::from_selector(&selector).to_string(),
            "app=marie-executor,marie.ai/pool=extract"
        );
    }

    #[test]
    fn field_selector_by_name() {
        let f = Fields::parse("metadata.name=p1").unwrap();
        assert_eq!(f.name(), Some("p1"));
        assert!(f.matches("p1", "ns", "Running"));
        assert!(!f.matches("p2", "ns", "Running"));
        assert!(Fields::parse("spec.nodeName=x").is_err());
    }
}
