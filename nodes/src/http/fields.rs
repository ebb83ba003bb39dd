//! The fields of a submit (`pool`, `handler`, `priority`, …), gathered from the query
//! string, `X-Marie-*` headers or multipart parts, and checked one by one so a bad value
//! is answered with the name of its field.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::http::HeaderMap;
use marie_decide::admission::MAX_FIELD_LEN;
use marie_protocol::{DedupPolicy, JobMetadata, JobSpec};

use super::error::ApiError;

/// Every field a submit takes besides the document.
pub const SUBMIT_FIELDS: [&str; 9] = [
    "pool",
    "handler",
    "priority",
    "project_id",
    "ref_type",
    "ref_id",
    "max_attempts",
    "timeout_secs",
    "dedup",
];

/// Headers that carry a submit field: `X-Marie-Project-Id` carries `project_id`.
const HEADER_PREFIX: &str = "x-marie-";

/// Submit fields by name, as text, before they are checked.
#[derive(Debug, Default)]
pub struct SubmitFields {
    values: BTreeMap<&'static str, String>,
}

impl SubmitFields {
    /// Takes the fields from `X-Marie-<Field>` headers (`X-Marie-Project-Id`), then from
    /// the query string, which wins over a header.
    pub fn from_request(headers: &HeaderMap, query: &[(String, String)]) -> Result<Self, ApiError> {
        let mut fields = SubmitFields::default();
        for (header, value) in headers {
            let Some(suffix) = header.as_str().strip_prefix(HEADER_PREFIX) else {
                continue;
            };
            let Some(name) = SUBMIT_FIELDS
                .into_iter()
                .find(|f| f.len() == suffix.len() && f.replace('_', "-") == suffix)
            else {
                continue;
            };
            let value = value.to_str().map_err(|_| {
                ApiError::field(name, format!("header {header} is not visible ASCII"))
            })?;
            fields.values.insert(name, value.to_owned());
        }
        let mut from_query = SubmitFields::default();
        for (name, value) in query {
            from_query.set(name, value.clone())?;
        }
        fields.values.append(&mut from_query.values);
        Ok(fields)
    }

    /// Sets one field; a name that is not a submit field, or a field given twice in the
    /// same place, is refused.
    pub fn set(&mut self, name: &str, value: String) -> Result<(), ApiError> {
        let Some(known) = SUBMIT_FIELDS.iter().find(|f| **f == name) else {
            return Err(ApiError::field(
                name,
                format!(
                    "not a submit field; the fields are file, {}",
                    SUBMIT_FIELDS.join(", ")
                ),
            ));
        };
        if self.values.insert(known, value).is_some() {
            return Err(ApiError::field(name, "given twice: give it once"));
        }
        Ok(())
    }

    /// Overrides the fields with those of `other` (multipart parts over the query); a
    /// value a part replaces must still be valid, so a bad field is never silently
    /// dropped.
    pub fn merge(&mut self, other: SubmitFields) -> Result<(), ApiError> {
        for (name, value) in other.values {
            if let Some(replaced) = self.values.insert(name, value) {
                let mut alone = SubmitFields::default();
                alone.values.insert("pool", "-".into());
                alone.values.insert("handler", "-".into());
                alone.values.insert(name, replaced);
                alone.into_spec(Vec::new())?;
            }
        }
        Ok(())
    }

    /// Checks every field and builds the job's spec around `payload`.
    pub fn into_spec(mut self, payload: Vec<u8>) -> Result<JobSpec, ApiError> {
        let pool = self.required("pool")?;
        let handler = self.required("handler")?;
        let mut spec = JobSpec::new(pool, handler, payload);
        if let Some(priority) = self.parsed::<i32>("priority", "an integer (e.g. 5 or -1)")? {
            spec.priority = priority;
        }
        for name in ["project_id", "ref_type", "ref_id"] {
            if self
                .values
                .get(name)
                .is_some_and(|v| v.len() > MAX_FIELD_LEN)
            {
                let reason = format!("longer than {MAX_FIELD_LEN} bytes");
                return Err(ApiError::field(name, reason));
            }
        }
        spec.metadata = JobMetadata {
            project_id: self.values.remove("project_id").unwrap_or_default(),
            ref_type: self.values.remove("ref_type").unwrap_or_default(),
            ref_id: self.values.remove("ref_id").unwrap_or_default(),
        };
        spec.max_attempts = self.parsed::<u32>("max_attempts", "a whole number (e.g. 3)")?;
        if let Some(secs) = self.parsed::<u64>("timeout_secs", "a whole number of seconds")? {
            if secs == 0 {
                return Err(ApiError::field("timeout_secs", "must be at least 1 second"));
            }
            spec.timeout_ms = Some(secs.saturating_mul(1000));
        }
        if let Some(dedup) = self.values.remove("dedup") {
            spec.dedup = parse_dedup(&dedup)?;
        }
        Ok(spec)
    }

    fn required(&mut self, name: &'static str) -> Result<String, ApiError> {
        match self.values.remove(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(ApiError::field(
                name,
                format!(
                    "missing: pass ?{name}=… (or a multipart part {name}, or the header X-Marie-{name})"
                ),
            )),
        }
    }

    fn parsed<T: FromStr>(
        &mut self,
        name: &'static str,
        want: &str,
    ) -> Result<Option<T>, ApiError> {
        self.values
            .remove(name)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| ApiError::field(name, format!("{text:?} is not {want}")))
            })
            .transpose()
    }
}

fn parse_dedup(text: &str) -> Result<DedupPolicy, ApiError> {
    match text {
        "return_existing" => Ok(DedupPolicy::ReturnExisting),
        "reject" => Ok(DedupPolicy::Reject),
        "off" => Ok(DedupPolicy::Off),
        other => Err(ApiError::field(
            "dedup",
            format!("{other:?} is not a policy: use return_existing, reject or off"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_part_overrides_a_query_field_only_when_both_are_valid() {
        let part = |value: &str| {
            let mut parts = SubmitFields::default();
            parts.set("priority", value.into()).expect("a part");
            parts
        };
        let mut fields =
            SubmitFields::from_request(&HeaderMap::new(), &query(&[("priority", "1")]))
                .expect("fields");
        fields.merge(part("5")).expect("a valid override");
        assert_eq!(fields.values["priority"], "5");
        let mut fields =
            SubmitFields::from_request(&HeaderMap::new(), &query(&[("priority", "1.5")]))
                .expect("fields");
        let err = fields.merge(part("5")).unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidField { field, .. } if field == "priority"),
            "{err}"
        );
    }

    #[test]
    fn every_field_reaches_the_spec() {
        let q = query(&[
            ("pool", "extract"),
            ("handler", "echo"),
            ("priority", "-3"),
            ("project_id", "acme"),
            ("ref_type", "invoice"),
            ("ref_id", "42"),
            ("max_attempts", "2"),
            ("timeout_secs", "9"),
            ("dedup", "reject"),
        ]);
        let spec = SubmitFields::from_request(&HeaderMap::new(), &q)
            .and_then(|f| f.into_spec(b"x".to_vec()))
            .expect("valid");
        assert_eq!(
            (spec.pool.as_str(), spec.handler.as_str()),
            ("extract", "echo")
        );
        assert_eq!(spec.priority, -3);
        assert_eq!(spec.metadata.ref_id, "42");
        assert_eq!(spec.max_attempts, Some(2));
        assert_eq!(spec.timeout_ms, Some(9000));
        assert_eq!(spec.dedup, DedupPolicy::Reject);
    }

    #[test]
    fn headers_give_fields_and_the_query_wins() {
        let mut headers = HeaderMap::new();
        headers.insert("x-marie-pool", "from-header".parse().expect("header"));
        headers.insert("x-marie-project-id", "acme".parse().expect("header"));
        let q = query(&[("pool", "from-query"), ("handler", "echo")]);
        let spec = SubmitFields::from_request(&headers, &q)
            .and_then(|f| f.into_spec(vec![]))
            .expect("valid");
        assert_eq!(spec.pool, "from-query");
        assert_eq!(spec.metadata.project_id, "acme");
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let q = query(&[("pool", "p"), ("handler", "echo"), ("priority", "high")]);
        let err = SubmitFields::from_request(&HeaderMap::new(), &q)
            .and_then(|f| f.into_spec(vec![]))
            .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidField { field, .. } if field == "priority"),
            "{err}"
        );
        let err = SubmitFields::from_request(&HeaderMap::new(), &query(&[("handler", "echo")]))
            .and_then(|f| f.into_spec(vec![]))
            .unwrap_err();
        assert!(
            matches!(&err, ApiError::InvalidField { field, .. } if field == "pool"),
            "{err}"
        );
        let err =
            SubmitFields::from_request(&HeaderMap::new(), &query(&[("poool", "x")])).unwrap_err();
        assert!(err.to_string().contains("not a submit field"), "{err}");
    }
}
