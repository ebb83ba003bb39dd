//! Whether a Gateway takes a job: the spec is valid, its pool and handler exist, its
//! payload fits, and the pool's queue has room.

use std::collections::BTreeMap;

use marie_protocol::{GatewayError, JobSpec};

/// What one pool accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRules {
    /// Handlers the pool offers.
    pub handlers: Vec<String>,
    /// Most jobs waiting in the pool's queue; past it submits get `QueueFull`.
    pub max_queued: u64,
}

/// The limits a Gateway enforces, from configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The pools and what each accepts.
    pub pools: BTreeMap<String, PoolRules>,
    /// Largest payload in bytes.
    pub max_payload_bytes: u64,
    /// Runs allowed when the spec does not say.
    pub default_max_attempts: u32,
    /// Largest `max_attempts` a spec may ask for.
    pub max_attempts_cap: u32,
    /// Run timeout when the spec does not say, in milliseconds.
    pub default_timeout_ms: u64,
}

/// Longest metadata field, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// Longest `timeout_ms` or `expire_after_ms` a spec may ask for: a year. Larger values
/// mean "never" in practice, and would not fit the stores' signed 64-bit columns.
pub const MAX_DURATION_MS: u64 = 365 * 24 * 3600 * 1000;

/// Checks a spec against the limits; `pending` is the pool's current queue depth.
/// Returns the job's effective `(max_attempts, timeout_ms)`.
pub fn admit(
    spec: &JobSpec,
    limits: &Limits,
    pending: u64,
    finish_rate: f64,
) -> Result<(u32, u64), GatewayError> {
    let Some(rules) = limits.pools.get(&spec.pool) else {
        return Err(GatewayError::UnknownPool {
            pool: spec.pool.clone(),
            known: limits.pools.keys().cloned().collect(),
        });
    };
    if !rules.handlers.iter().any(|h| h == &spec.handler) {
        return Err(GatewayError::UnknownHandler {
            pool: spec.pool.clone(),
            handler: spec.handler.clone(),
            known: rules.handlers.clone(),
        });
    }
    let size = spec.payload.len() as u64;
    if size > limits.max_payload_bytes {
        return Err(GatewayError::PayloadTooLarge {
            size,
            limit: limits.max_payload_bytes,
        });
    }
    let m = &spec.metadata;
    for (field, value) in [
        ("project_id", &m.project_id),
        ("ref_type", &m.ref_type),
        ("ref_id", &m.ref_id),
    ] {
        if value.len() > MAX_FIELD_LEN {
            return Err(invalid(field, format!("longer than {MAX_FIELD_LEN} bytes")));
        }
    }
    let max_attempts = spec.max_attempts.unwrap_or(limits.default_max_attempts);
    if max_attempts == 0 || max_attempts > limits.max_attempts_cap {
        let reason = format!("must be between 1 and {}", limits.max_attempts_cap);
        return Err(invalid("max_attempts", reason));
    }
    let timeout_ms = spec.timeout_ms.unwrap_or(limits.default_timeout_ms);
    if timeout_ms == 0 {
        return Err(invalid("timeout_ms", "must be above 0".into()));
    }
    for (field, value) in [
        ("timeout_ms", Some(timeout_ms)),
        ("expire_after_ms", spec.expire_after_ms),
    ] {
        if value.is_some_and(|ms| ms > MAX_DURATION_MS) {
            let reason = format!("must be at most {MAX_DURATION_MS} (a year)");
            return Err(invalid(field, reason));
        }
    }
    if pending >= rules.max_queued {
        return Err(GatewayError::QueueFull {
            pool: spec.pool.clone(),
            pending,
            retry_after_secs: retry_after_secs(pending + 1 - rules.max_queued, finish_rate),
        });
    }
    Ok((max_attempts, timeout_ms))
}

/// Seconds until `excess` jobs have drained at `finish_rate` per second: between 1 and
/// 60, and 5 when the pool is finishing nothing.
pub fn retry_after_secs(excess: u64, finish_rate: f64) -> u32 {
    if finish_rate <= f64::EPSILON {
        return 5;
    }
    (excess as f64 / finish_rate).ceil().clamp(1.0, 60.0) as u32
}

fn invalid(field: &str, reason: String) -> GatewayError {
    GatewayError::InvalidField {
        field: field.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        let rules = PoolRules {
            handlers: vec!["echo".into()],
            max_queued: 10,
        };
        Limits {
            pools: BTreeMap::from([("extract".into(), rules)]),
            max_payload_bytes: 100,
            default_max_attempts: 3,
            max_attempts_cap: 10,
            default_timeout_ms: 1000,
        }
    }

    #[test]
    fn a_valid_spec_gets_the_defaults() {
        let spec = JobSpec::new("extract", "echo", vec![1; 100]);
        assert_eq!(admit(&spec, &limits(), 0, 0.0), Ok((3, 1000)));
    }

    #[test]
    fn unknown_pool_and_handler_name_what_exists() {
        let err = admit(&JobSpec::new("nope", "echo", vec![]), &limits(), 0, 0.0).unwrap_err();
        assert!(err.to_string().contains("\"extract\""), "{err}");
        let err = admit(&JobSpec::new("extract", "ocr", vec![]), &limits(), 0, 0.0).unwrap_err();
        assert!(err.to_string().contains("[\"echo\"]"), "{err}");
    }

    #[test]
    fn a_timeout_or_expiry_past_a_year_is_refused() {
        let mut spec = JobSpec::new("extract", "echo", vec![]);
        spec.timeout_ms = Some(MAX_DURATION_MS);
        assert!(admit(&spec, &limits(), 0, 0.0).is_ok());
        spec.timeout_ms = Some(u64::MAX);
        let err = admit(&spec, &limits(), 0, 0.0).unwrap_err();
        assert!(
            matches!(err, GatewayError::InvalidField { ref field, .. } if field == "timeout_ms"),
            "{err}"
        );
        spec.timeout_ms = None;
        spec.expire_after_ms = Some(MAX_DURATION_MS + 1);
        let err = admit(&spec, &limits(), 0, 0.0).unwrap_err();
        assert!(
            matches!(err, GatewayError::InvalidField { ref field, .. } if field == "expire_after_ms"),
            "{err}"
        );
    }

    #[test]
    fn oversize_payload_is_refused() {
        let err = admit(
            &JobSpec::new("extract", "echo", vec![0; 101]),
            &limits(),
            0,
            0.0,
        );
        assert!(matches!(
            err,
            Err(GatewayError::PayloadTooLarge {
                size: 101,
                limit: 100
            })
        ));
    }

    #[test]
    fn a_full_queue_says_when_to_retry() {
        let spec = JobSpec::new("extract", "echo", vec![]);
        let err = admit(&spec, &limits(), 30, 4.0).unwrap_err();
        assert!(
            matches!(
                err,
                GatewayError::QueueFull {
                    retry_after_secs: 6,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(retry_after_secs(1, 0.0), 5);
        assert_eq!(retry_after_secs(1_000_000, 1.0), 60);
    }

    #[test]
    fn bad_attempts_are_refused_with_the_field() {
        let mut spec = JobSpec::new("extract", "echo", vec![]);
        spec.max_attempts = Some(0);
        let err = admit(&spec, &limits(), 0, 0.0).unwrap_err();
        assert!(
            matches!(err, GatewayError::InvalidField { ref field, .. } if field == "max_attempts")
        );
    }
}
