//! One executor pool: its Deployment (one executor per pod), its PodDisruptionBudget
//! and the one scaler that owns its replicas — a KEDA ScaledObject, an HPA on the
//! guide's External metrics, Marie's Supervisor, or nobody.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    ExternalMetricSource, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec,
    MetricTarget,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::container::joining_env;
use super::crd::{ScaleTargetRef, ScaledObject, ScaledObjectSpec, Trigger};
use super::gateway::{deployment_ref, rolling};
use super::pod::{PodShape, meta, pod_spec, pod_template, selector, selector_labels, tolerations};
use super::to_i32;
use crate::config::{KedaSignal, Scaler};
use crate::plan::{Component, Plan, PoolPlan};

/// The pool's Deployment; `replicas` only when nobody scales it.
pub fn deployment(plan: &Plan, pool: &PoolPlan) -> Deployment {
    let mut spec = pod_spec(
        plan,
        PodShape {
            component: Component::Executor,
            pool: Some(&pool.name),
            image: &pool.image,
            args: pool.node_args().map(String::from).into(),
            env: joining_env(plan),
            shutdown_delay_secs: 0,
            drain_timeout_secs: pool.drain_timeout_secs,
            grace_secs: pool.grace_secs,
            startup: pool.startup,
            requests: &pool.requests,
            limits: &pool.limits,
            spread: true,
            data_claim: None,
        },
    );
    spec.node_selector = (!pool.node_selector.is_empty()).then(|| pool.node_selector.clone());
    spec.tolerations = tolerations(&pool.tolerations);
    let s = pool.startup;
    let startup_budget = u64::from(s.initial_delay_seconds)
        + u64::from(s.period_seconds) * u64::from(s.failure_threshold);
    Deployment {
        metadata: meta(
            plan,
            &pool.object_name,
            Some(Component::Executor),
            Some(&pool.name),
        ),
        spec: Some(DeploymentSpec {
            replicas: (pool.scaler == Scaler::None).then(|| to_i32(pool.replicas)),
            revision_history_limit: Some(3),
            progress_deadline_seconds: Some(to_i32((startup_budget + 60).max(600))),
            // A surge pod of a GPU pool waits for a GPU nobody has: replace in place.
            strategy: Some(match pool.gpu {
                true => rolling(0, 1),
                false => rolling(1, 0),
            }),
            selector: selector(selector_labels(Component::Executor, Some(&pool.name))),
            template: pod_template(
                Component::Executor,
                Some(&pool.name),
                Some(pool.annotations.clone()),
                spec,
            ),
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// One pod of the pool leaves at a time; each drains its jobs.
pub fn pdb(plan: &Plan, pool: &PoolPlan) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(
            plan,
            &pool.object_name,
            Some(Component::Executor),
            Some(&pool.name),
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(selector_labels(
                Component::Executor,
                Some(&pool.name),
            ))),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The PromQL KEDA asks: one value for this pool in this namespace.
pub fn keda_query(plan: &Plan, pool: &PoolPlan) -> String {
    let k = &plan.cluster.kubernetes;
    let matchers = format!(
        "executor=\"{}\",{}=\"{}\"",
        pool.name, k.prometheus.namespace_label, k.namespace
    );
    match pool.keda_signal {
        KedaSignal::Pending => format!("sum(marie_jobs_pending{{{matchers}}})"),
        KedaSignal::Desired => format!("max(marie_supervisor_desired_executors{{{matchers}}})"),
    }
}

/// The KEDA ScaledObject of a `scaler = "keda"` pool.
pub fn scaled_object(plan: &Plan, pool: &PoolPlan) -> Option<ScaledObject> {
    let bounds = pool.bounds.filter(|_| pool.scaler == Scaler::Keda)?;
    let trigger_name = match pool.keda_signal {
        KedaSignal::Pending => "marie-jobs-pending",
        KedaSignal::Desired => "marie-desired-executors",
    };
    let floor = bounds.min.max(1).min(bounds.max);
    Some(ScaledObject {
        api_version: "keda.sh/v1alpha1".into(),
        kind: "ScaledObject".into(),
        metadata: meta(
            plan,
            &pool.object_name,
            Some(Component::Executor),
            Some(&pool.name),
        ),
        spec: ScaledObjectSpec {
            scale_target_ref: ScaleTargetRef {
                api_version: Some("apps/v1".into()),
                kind: Some("Deployment".into()),
                name: pool.object_name.clone(),
            },
            min_replica_count: Some(if bounds.scale_to_zero { 0 } else { floor }),
            max_replica_count: Some(bounds.max),
            cooldown_period: Some(bounds.last_executor_delay_secs),
            polling_interval: Some(pool.keda_polling_interval),
            triggers: vec![Trigger {
                type_: "prometheus".into(),
                name: Some(trigger_name.into()),
                metadata: BTreeMap::from([
                    (
                        "serverAddress".to_owned(),
                        plan.cluster.kubernetes.prometheus.url.clone(),
                    ),
                    ("threshold".to_owned(), pool.keda_threshold.to_string()),
                    ("query".to_owned(), keda_query(plan, pool)),
                ]),
            }],
        },
    })
}

/// The HPA of a `scaler = "hpa"` pool: the guide's two External metrics, selected
/// for this pool, and its scaling behaviour.
pub fn hpa(plan: &Plan, pool: &PoolPlan) -> Option<HorizontalPodAutoscaler> {
    let bounds = pool.bounds.filter(|_| pool.scaler == Scaler::Hpa)?;
    let external = |metric: &str, per_pod: u32| MetricSpec {
        type_: "External".into(),
        external: Some(ExternalMetricSource {
            metric: MetricIdentifier {
                name: metric.into(),
                selector: Some(selector(BTreeMap::from([(
                    "executor".to_owned(),
                    pool.name.clone(),
                )]))),
            },
            target: MetricTarget {
                type_: "AverageValue".into(),
                average_value: Some(Quantity(per_pod.to_string())),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let rules = |window: i32, type_: &str, value: i32| HPAScalingRules {
        stabilization_window_seconds: Some(window),
        policies: Some(vec![HPAScalingPolicy {
            type_: type_.into(),
            value,
            period_seconds: 60,
        }]),
        ..HPAScalingRules::default()
    };
    Some(HorizontalPodAutoscaler {
        metadata: meta(
            plan,
            &pool.object_name,
            Some(Component::Executor),
            Some(&pool.name),
        ),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: deployment_ref(&pool.object_name),
            min_replicas: Some(to_i32(bounds.min.max(1))),
            max_replicas: to_i32(bounds.max),
            metrics: Some(vec![
                external("marie_jobs_pending", pool.hpa_pending_per_pod),
                external("marie_executor_slots_used", pool.hpa_slots_used_per_pod),
            ]),
            behavior: Some(HorizontalPodAutoscalerBehavior {
                scale_up: Some(rules(60, "Pods", 2)),
                scale_down: Some(rules(300, "Percent", 10)),
            }),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
