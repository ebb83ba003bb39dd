//! One pool's plan: its name on Kubernetes, who scales it and within which bounds, its
//! resources and QoS, where it is scheduled, its grace period, its startup probe and
//! its scaler's targets, each resolved from the configuration or the guide's defaults.

use std::collections::BTreeMap;

use super::{
    AUTOSCALER_GRACE_CAP_SECS, GPU_RESOURCE, Quantities, Refusal, grace_period_secs, quantities,
    zero,
};
use crate::config::{Amount, KedaSignal, Resources, Scaler, StartupProbe, TolerationConfig};
use crate::dns;
use crate::input::{Bounds, Cluster, Pool, SupervisorBackend};

/// One pool, every default resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolPlan {
    /// The pool's name.
    pub name: String,
    /// `marie-executor-<pool>`: the Deployment, its PDB and scaler.
    pub object_name: String,
    /// Who sets the replicas.
    pub scaler: Scaler,
    /// Fixed replicas (`scaler = "none"`).
    pub replicas: u32,
    /// Bounds of a scaled pool.
    pub bounds: Option<Bounds>,
    /// Whether the pool needs a GPU.
    pub gpu: bool,
    /// The image.
    pub image: String,
    /// Requests.
    pub requests: BTreeMap<String, String>,
    /// Limits.
    pub limits: BTreeMap<String, String>,
    /// Node selector.
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations.
    pub tolerations: Vec<TolerationConfig>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    /// Drain on SIGTERM.
    pub drain_timeout_secs: u64,
    /// `terminationGracePeriodSeconds`.
    pub grace_secs: u64,
    /// The startup probe.
    pub startup: StartupProbe,
    /// KEDA's query signal.
    pub keda_signal: KedaSignal,
    /// KEDA's value per pod.
    pub keda_threshold: u32,
    /// KEDA's polling interval.
    pub keda_polling_interval: u32,
    /// HPA: waiting jobs per pod.
    pub hpa_pending_per_pod: u32,
    /// HPA: busy slots per pod.
    pub hpa_slots_used_per_pod: u32,
}

impl PoolPlan {
    /// The `marie` arguments of the pool's executor node: one executor per pod.
    pub fn node_args(&self) -> [&str; 7] {
        [
            "node",
            "--role",
            "executor",
            "--pool",
            &self.name,
            "--executors",
            "1",
        ]
    }
}

/// Resolves `pool`, or says why it cannot render; `warnings` gets what renders but
/// deserves a look.
pub(super) fn plan_pool(
    cluster: &Cluster,
    pool: &Pool,
    warnings: &mut Vec<String>,
) -> Result<PoolPlan, Refusal> {
    let pk = &pool.kubernetes;
    let object_name = object_name(pool)?;
    let scaler = scaler(cluster, pool)?;
    let (requests, limits) = resources(pool)?;
    let drain_timeout_secs = pk.drain_timeout_secs.unwrap_or(cluster.drain_timeout_secs);
    let grace_secs = grace_secs(pool, drain_timeout_secs, warnings);
    let startup = startup_probe(pool)?;
    let targets = ScalerTargets::of(pool)?;
    Ok(PoolPlan {
        name: pool.name.clone(),
        object_name,
        scaler,
        replicas: pool.replicas,
        bounds: pool.autoscale,
        gpu: pool.gpu,
        image: image(cluster, pool),
        requests,
        limits,
        node_selector: node_selector(pool),
        tolerations: tolerations(pool),
        annotations: pod_annotations(pool),
        drain_timeout_secs,
        grace_secs,
        startup,
        keda_signal: pk.keda.signal,
        keda_threshold: targets.keda_threshold,
        keda_polling_interval: pk.keda.polling_interval,
        hpa_pending_per_pod: pk.hpa.pending_per_pod,
        hpa_slots_used_per_pod: targets.hpa_slots_used_per_pod,
    })
}

/// `marie-executor-<pool>`, when both it and the pool's name are DNS labels.
fn object_name(pool: &Pool) -> Result<String, Refusal> {
    let object_name = format!("marie-executor-{}", pool.name);
    match dns::label_error(&pool.name).or_else(|| dns::label_error(&object_name)) {
        None => Ok(object_name),
        Some(reason) => Err(Refusal::BadName {
            what: "pool",
            name: pool.name.clone(),
            reason: format!("cannot name Kubernetes objects ({object_name:?}: {reason})"),
            fix: "pool names on Kubernetes hold lowercase letters, digits and '-', 48 at most",
        }),
    }
}

/// Who scales the pool (the Supervisor for an autoscaled pool unless configured), once
/// its bounds agree with it, the Supervisor can reach the Deployment it is to scale,
/// and nothing but the scaler starts its executors.
fn scaler(cluster: &Cluster, pool: &Pool) -> Result<Scaler, Refusal> {
    let scaler = pool.kubernetes.scaler_or_default(pool.autoscale.is_some());
    check_bounds(pool, scaler)?;
    let backend = cluster.supervisor_backend;
    if scaler == Scaler::Supervisor && backend != SupervisorBackend::Kubernetes {
        return Err(Refusal::SupervisorWithoutKubernetes {
            pool: pool.name.clone(),
            backend: backend.as_str(),
        });
    }
    let in_server = matches!(
        cluster.supervisor_backend,
        SupervisorBackend::Local | SupervisorBackend::Process
    );
    if pool.autoscale.is_some() && in_server {
        return Err(Refusal::SupervisorStartsExecutors {
            pool: pool.name.clone(),
            backend: cluster.supervisor_backend.as_str(),
        });
    }
    Ok(scaler)
}

/// A scaler has bounds and a fixed pool has none; the bounds leave room for a pod, and
/// an HPA is not asked to reach zero.
fn check_bounds(pool: &Pool, scaler: Scaler) -> Result<(), Refusal> {
    match (scaler, pool.autoscale) {
        (Scaler::None, Some(_)) => Err(Refusal::BoundsWithoutScaler {
            pool: pool.name.clone(),
        }),
        (Scaler::Supervisor | Scaler::Keda | Scaler::Hpa, None) => {
            Err(Refusal::ScalerWithoutBounds {
                pool: pool.name.clone(),
                scaler: scaler.as_str(),
            })
        }
        (Scaler::Hpa, Some(bounds)) if bounds.scale_to_zero => Err(Refusal::HpaToZero {
            pool: pool.name.clone(),
        }),
        (_, Some(bounds)) if bounds.min > bounds.max => Err(Refusal::MinAboveMax {
            what: format!("pool {:?}: autoscale", pool.name),
            min: bounds.min,
            max: bounds.max,
        }),
        (_, Some(bounds)) if bounds.max == 0 => Err(zero(
            &format!("pool {:?}: autoscale.max", pool.name),
            "a scaled pool needs room for one executor at least",
        )),
        _ => Ok(()),
    }
}

/// The configured image, or the GPU image for a pool that needs a GPU or a model.
fn image(cluster: &Cluster, pool: &Pool) -> String {
    let k = &cluster.kubernetes;
    pool.kubernetes.image.clone().unwrap_or_else(|| {
        match pool.gpu || pool.model {
            true => &k.image_gpu,
            false => &k.image,
        }
        .clone()
    })
}

/// The configured node selector, or nodes with a GPU for a GPU pool.
fn node_selector(pool: &Pool) -> BTreeMap<String, String> {
    pool.kubernetes
        .node_selector
        .clone()
        .unwrap_or_else(|| match pool.gpu {
            true => BTreeMap::from([("nvidia.com/gpu.present".to_owned(), "true".to_owned())]),
            false => BTreeMap::new(),
        })
}

/// The configured tolerations, or the GPU nodes' taint for a GPU pool.
fn tolerations(pool: &Pool) -> Vec<TolerationConfig> {
    pool.kubernetes
        .tolerations
        .clone()
        .unwrap_or_else(|| match pool.gpu {
            true => vec![TolerationConfig {
                key: GPU_RESOURCE.into(),
                operator: "Exists".into(),
                value: None,
                effect: Some("NoSchedule".into()),
            }],
            false => Vec::new(),
        })
}

/// The configured pod annotations, and leave for the cluster-autoscaler to evict.
fn pod_annotations(pool: &Pool) -> BTreeMap<String, String> {
    let mut annotations = pool.kubernetes.pod_annotations.clone();
    // The pod's emptyDir would keep the cluster-autoscaler from removing its node, and
    // a SIGTERM drains the executor without losing a job.
    annotations.insert(
        "cluster-autoscaler.kubernetes.io/safe-to-evict".into(),
        "true".into(),
    );
    annotations
}

/// The grace period of the pool's pods (executors stop at once, no shutdown delay);
/// one the cluster-autoscaler would cut is a warning.
fn grace_secs(pool: &Pool, drain_timeout_secs: u64, warnings: &mut Vec<String>) -> u64 {
    let grace_secs = grace_period_secs(0, drain_timeout_secs);
    if grace_secs > AUTOSCALER_GRACE_CAP_SECS {
        warnings.push(format!(
            "pool {:?}: a grace period of {grace_secs} s is over the cluster-autoscaler's default --max-graceful-termination-sec ({AUTOSCALER_GRACE_CAP_SECS}); it cuts the drain of pods it removes there",
            pool.name
        ));
    }
    grace_secs
}

/// The configured startup probe, or one patient enough for a model to load.
fn startup_probe(pool: &Pool) -> Result<StartupProbe, Refusal> {
    let startup = pool
        .kubernetes
        .startup_probe
        .unwrap_or(match pool.gpu || pool.model {
            true => StartupProbe {
                initial_delay_seconds: 30,
                period_seconds: 10,
                failure_threshold: 60,
            },
            false => StartupProbe {
                initial_delay_seconds: 0,
                period_seconds: 2,
                failure_threshold: 30,
            },
        });
    if startup.period_seconds == 0 || startup.failure_threshold == 0 {
        return Err(zero(
            &format!(
                "pool {:?}: startup_probe period or failure threshold",
                pool.name
            ),
            "set both to 1 or more",
        ));
    }
    Ok(startup)
}

/// The per-pod targets of KEDA and the HPA that default from the pool's slots.
struct ScalerTargets {
    keda_threshold: u32,
    hpa_slots_used_per_pod: u32,
}

impl ScalerTargets {
    /// KEDA's threshold (a pod's slots of waiting jobs, or one desired pod) and the
    /// HPA's busy slots (three quarters of a pod's); no target may be 0.
    fn of(pool: &Pool) -> Result<ScalerTargets, Refusal> {
        let pk = &pool.kubernetes;
        let keda_threshold = pk.keda.threshold.unwrap_or(match pk.keda.signal {
            KedaSignal::Pending => pool.slots,
            KedaSignal::Desired => 1,
        });
        let hpa_slots_used_per_pod = pk
            .hpa
            .slots_used_per_pod
            .unwrap_or((pool.slots * 3).div_ceil(4));
        for (what, value) in [
            ("keda.threshold", keda_threshold),
            ("keda.polling_interval", pk.keda.polling_interval),
            ("hpa.pending_per_pod", pk.hpa.pending_per_pod),
            ("hpa.slots_used_per_pod", hpa_slots_used_per_pod),
        ] {
            if value == 0 {
                return Err(zero(
                    &format!("pool {:?}: kubernetes.{what}", pool.name),
                    "set it to 1 or more",
                ));
            }
        }
        Ok(ScalerTargets {
            keda_threshold,
            hpa_slots_used_per_pod,
        })
    }
}

/// Requests and limits of a pool: the configured ones, or the guide's; a GPU pool gets
/// one GPU and requests = limits (Guaranteed QoS).
fn resources(pool: &Pool) -> Result<(Quantities, Quantities), Refusal> {
    let configured = pool.kubernetes.resources.clone();
    if !pool.gpu {
        let r = configured.unwrap_or_else(|| Resources {
            requests: amounts([("cpu", "2"), ("memory", "4Gi")]),
            limits: amounts([("cpu", "4"), ("memory", "8Gi")]),
        });
        return Ok((quantities(&r.requests), quantities(&r.limits)));
    }
    let r = configured.unwrap_or_else(|| Resources {
        requests: BTreeMap::new(),
        limits: amounts([("cpu", "4"), ("memory", "16Gi")]),
    });
    let mut limits = quantities(&r.limits);
    limits
        .entry(GPU_RESOURCE.into())
        .or_insert_with(|| "1".into());
    let refuse = |problem: String| Refusal::GpuNotGuaranteed {
        pool: pool.name.clone(),
        problem,
    };
    for needed in ["cpu", "memory"] {
        if !limits.contains_key(needed) {
            return Err(refuse(format!("no {needed} limit")));
        }
    }
    let requests = match r.requests.is_empty() {
        true => limits.clone(),
        false => quantities(&r.requests),
    };
    if requests != limits {
        return Err(refuse(format!(
            "requests {requests:?} differ from limits {limits:?}"
        )));
    }
    Ok((requests, limits))
}

/// The guide's default amounts.
fn amounts<const N: usize>(defaults: [(&str, &str); N]) -> BTreeMap<String, Amount> {
    defaults
        .map(|(k, v)| (k.to_owned(), Amount::Text(v.to_owned())))
        .into()
}
