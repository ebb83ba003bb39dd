//! The two custom resources Marie renders, as small typed structs: KEDA's
//! `ScaledObject` (keda.sh/v1alpha1) and prometheus-operator's `PodMonitor`
//! (monitoring.coreos.com/v1). Only the fields Marie sets exist; unknown fields are
//! refused when one is read back, as the API server's strict validation would.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// `keda.sh/v1alpha1` `ScaledObject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaledObject {
    /// `keda.sh/v1alpha1`.
    pub api_version: String,
    /// `ScaledObject`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// What to scale and on what.
    pub spec: ScaledObjectSpec,
}

/// The spec of a `ScaledObject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaledObjectSpec {
    /// The Deployment.
    pub scale_target_ref: ScaleTargetRef,
    /// Fewest pods (0: scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<u32>,
    /// Most pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<u32>,
    /// Seconds of inactivity before the last pod goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<u64>,
    /// Seconds between queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<u32>,
    /// The triggers.
    pub triggers: Vec<Trigger>,
}

/// A `ScaledObject`'s target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleTargetRef {
    /// `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Deployment` (KEDA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The target's name.
    pub name: String,
}

/// One KEDA trigger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trigger {
    /// `prometheus`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Name of the trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scaler's settings (every value a string).
    pub metadata: BTreeMap<String, String>,
}

/// `monitoring.coreos.com/v1` `PodMonitor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMonitor {
    /// `monitoring.coreos.com/v1`.
    pub api_version: String,
    /// `PodMonitor`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// Which pods and how.
    pub spec: PodMonitorSpec,
}

/// The spec of a `PodMonitor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMonitorSpec {
    /// The pods.
    pub selector: LabelSelector,
    /// Their scrape endpoints.
    pub pod_metrics_endpoints: Vec<PodMetricsEndpoint>,
}

/// One scrape endpoint of a `PodMonitor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodMetricsEndpoint {
    /// Container port name.
    pub port: String,
    /// HTTP path.
    pub path: String,
    /// Scrape interval (`5s`).
    pub interval: String,
    /// Keep the target's labels over the exposed ones.
    pub honor_labels: bool,
}
