//! Per-pool autoscale settings: the future `[executor.pools.autoscale]` table of
//! `cluster.toml`. Every field has a default, so an empty table is valid.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How one pool's executor count may move.
///
/// Mirrors the seed's knobs: `min`/`max` are `minReplicas`/`maxReplicas`, the windows
/// are the HPA's `stabilizationWindowSeconds`, the limits its `policies`, and
/// `scale_to_zero` the Helm `scaleToZero` switch with KEDA's `cooldownPeriod` as the
/// delay of the last executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoscaleSettings {
    /// Fewest executors, counted as `max(min, 1)`: only the idle rules of
    /// `scale_to_zero` take a pool lower.
    pub min: u32,
    /// Most executors, whatever the load.
    pub max: u32,
    /// Share of the slots the arrivals should keep busy (0 < u ≤ 1): `0.8` sizes the
    /// pool so that four slots of five run a job at the measured arrival rate.
    pub target_utilization: f64,
    /// The arrival rate moves the count only when it needs more than this share
    /// above or below the slots there are (the HPA's tolerance, 0.1): measured rates
    /// wobble, and a pool should not follow every wobble.
    pub tolerance: f64,
    /// How long a job of a burst should wait for a slot at most, in seconds: when a
    /// backlog outlasts the cold start, the policy starts the executors that clear
    /// what is left within `target_queue_wait_secs − cold start` of their being ready.
    /// Default: one and a half cold starts (measured), so half a cold start to drain.
    /// Shorter costs more executors per burst; at or below the cold start, every
    /// job left waiting gets a slot of its own.
    pub target_queue_wait_secs: Option<u64>,
    /// Scale-up stabilisation: scale up to the lowest need seen in this many seconds.
    /// `0` (the default) scales up at once.
    pub scale_up_window_secs: u64,
    /// Scale-down stabilisation: never go below the highest need seen in this many
    /// seconds (and at least one mean run time); this is what keeps the count from
    /// flapping.
    pub scale_down_window_secs: u64,
    /// At most this many executors added per period; none by default.
    pub scale_up_limit: Option<RateLimit>,
    /// At most this many executors removed per period; none by default. Neither limit
    /// holds the count below `min` or the running work.
    pub scale_down_limit: Option<RateLimit>,
    /// Parking an idle pool down to one executor and then to none.
    pub scale_to_zero: ScaleToZero,
}

impl Default for AutoscaleSettings {
    fn default() -> Self {
        AutoscaleSettings {
            min: 1,
            max: 10,
            target_utilization: 0.8,
            tolerance: 0.1,
            target_queue_wait_secs: None,
            scale_up_window_secs: 0,
            scale_down_window_secs: 60,
            scale_up_limit: None,
            scale_down_limit: None,
            scale_to_zero: ScaleToZero::default(),
        }
    }
}

/// A cap on how many executors one direction may change per period: the larger of
/// `executors` and `percent` % of the count at the start of the period (the HPA's
/// `selectPolicy: Max` over a `Pods` and a `Percent` policy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Executors per period.
    #[serde(default)]
    pub executors: u32,
    /// Percent of the count at the start of the period.
    #[serde(default)]
    pub percent: u32,
    /// Length of the period, in seconds.
    pub period_secs: u64,
}

/// Scale-to-zero: an idle pool (nothing queued, nothing running) shrinks to one
/// executor after `idle_delay_secs` and to none after `last_executor_delay_secs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScaleToZero {
    /// Whether an idle pool may go to zero executors (and below `min`).
    pub enabled: bool,
    /// Idle this long: down to one executor, whatever the scale-down window holds.
    pub idle_delay_secs: u64,
    /// Idle this long: the last executor goes too (KEDA's `cooldownPeriod`).
    pub last_executor_delay_secs: u64,
}

impl Default for ScaleToZero {
    fn default() -> Self {
        ScaleToZero {
            enabled: false,
            idle_delay_secs: 60,
            last_executor_delay_secs: 300,
        }
    }
}

/// Why a settings table was refused.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum SettingsError {
    /// `max` is zero.
    #[error("autoscale max must be at least 1")]
    MaxZero,
    /// `min` above `max`.
    #[error("autoscale min ({min}) is above max ({max})")]
    MinAboveMax {
        /// The configured min.
        min: u32,
        /// The configured max.
        max: u32,
    },
    /// Target utilisation outside (0, 1].
    #[error("autoscale target_utilization must be above 0 and at most 1, not {0}")]
    Utilization(f64),
    /// Tolerance outside [0, 1).
    #[error("autoscale tolerance must be at least 0 and below 1, not {0}")]
    Tolerance(f64),
    /// A rate limit that allows no change at all.
    #[error(
        "autoscale {0} limit allows no change: set executors or percent above 0 and period_secs above 0"
    )]
    EmptyLimit(&'static str),
    /// The last executor would go before the others.
    #[error(
        "scale_to_zero last_executor_delay_secs ({last}) must not be shorter than idle_delay_secs ({idle})"
    )]
    LastBeforeIdle {
        /// The idle delay.
        idle: u64,
        /// The last executor's delay.
        last: u64,
    },
}

impl AutoscaleSettings {
    /// Checks the settings hang together; the policy assumes they do.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max == 0 {
            return Err(SettingsError::MaxZero);
        }
        if self.min > self.max {
            return Err(SettingsError::MinAboveMax {
                min: self.min,
                max: self.max,
            });
        }
        let u = self.target_utilization;
        if !(u > 0.0 && u <= 1.0) {
            return Err(SettingsError::Utilization(u));
        }
        let tolerance = self.tolerance;
        if !(0.0..1.0).contains(&tolerance) {
            return Err(SettingsError::Tolerance(tolerance));
        }
        for (name, limit) in [
            ("scale_up", &self.scale_up_limit),
            ("scale_down", &self.scale_down_limit),
        ] {
            if let Some(limit) = limit
                && ((limit.executors == 0 && limit.percent == 0) || limit.period_secs == 0)
            {
                return Err(SettingsError::EmptyLimit(name));
            }
        }
        let zero = &self.scale_to_zero;
        if zero.last_executor_delay_secs < zero.idle_delay_secs {
            return Err(SettingsError::LastBeforeIdle {
                idle: zero.idle_delay_secs,
                last: zero.last_executor_delay_secs,
            });
        }
        Ok(())
    }

    /// The fewest executors while the pool has work: `max(min, 1)`, never above `max`.
    pub fn floor(&self) -> u32 {
        self.min.max(1).min(self.max.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_the_defaults() {
        let settings: AutoscaleSettings = serde_json::from_str("{}").expect("parses");
        assert_eq!(settings, AutoscaleSettings::default());
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn a_partial_table_keeps_the_other_defaults() {
        let settings: AutoscaleSettings = serde_json::from_str(
            r#"{"min": 0, "max": 4, "scale_to_zero": {"enabled": true},
                "scale_up_limit": {"executors": 2, "period_secs": 60}}"#,
        )
        .expect("parses");
        assert_eq!(settings.max, 4);
        assert!(settings.scale_to_zero.enabled);
        assert_eq!(settings.scale_to_zero.last_executor_delay_secs, 300);
        assert_eq!(
            settings.scale_up_limit,
            Some(RateLimit {
                executors: 2,
                percent: 0,
                period_secs: 60
            })
        );
        assert_eq!(settings.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed = serde_json::from_str::<AutoscaleSettings>(r#"{"maxReplicas": 4}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let mut settings = AutoscaleSettings {
            min: 5,
            max: 2,
            ..AutoscaleSettings::default()
        };
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::MinAboveMax { .. })
        ));
        settings.min = 1;
        settings.target_utilization = 1.5;
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::Utilization(_))
        ));
        settings.target_utilization = 0.8;
        settings.scale_down_limit = Some(RateLimit {
            executors: 0,
            percent: 0,
            period_secs: 60,
        });
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::EmptyLimit("scale_down"))
        ));
        settings.scale_down_limit = None;
        settings.scale_to_zero.idle_delay_secs = 600;
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::LastBeforeIdle { .. })
        ));
    }
}
