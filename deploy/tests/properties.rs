//! Over any valid configuration: the render succeeds, is byte-stable, names every
//! object once, and `check` finds nothing; the Compose file renders too.

mod support;

use std::collections::BTreeSet;

use marie_deploy::check::{self, Options};
use marie_deploy::config::Scaler;
use marie_deploy::{Cluster, Pool, SupervisorBackend};
use proptest::prelude::*;

fn pool_strategy() -> impl Strategy<Value = Pool> {
    (
        any::<bool>(),
        0u32..5,
        1u32..64,
        prop_oneof![
            Just(Scaler::None),
            Just(Scaler::Supervisor),
            Just(Scaler::Keda),
            Just(Scaler::Hpa)
        ],
        0u32..4,
        1u32..12,
        any::<bool>(),
        proptest::option::of(0u64..700),
    )
        .prop_map(|(gpu, replicas, slots, scaler, min, max, zero, drain)| {
            let mut p = support::pool("p", gpu);
            p.replicas = replicas;
            p.slots = slots;
            p.kubernetes.scaler = Some(scaler);
            p.kubernetes.drain_timeout_secs = drain;
            if scaler != Scaler::None {
                let max = max.max(min).max(1);
                p.autoscale = Some(support::bounds(min, max, zero && scaler != Scaler::Hpa));
            }
            p
        })
}

fn cluster_strategy() -> impl Strategy<Value = Cluster> {
    (
        proptest::collection::btree_map("[a-z][a-z0-9-]{0,20}[a-z0-9]", pool_strategy(), 1..6),
        "[a-z][a-z0-9]{0,15}",
        any::<[bool; 6]>(),
        0u64..120,
        0u64..10,
        1u64..(15 * 1024 * 1024),
    )
        .prop_map(|(pools, namespace, flags, drain, delay, payload)| {
            let mut c = support::cluster();
            c.pools = pools
                .into_iter()
                .map(|(name, mut p)| {
                    p.name = name;
                    p
                })
                .collect();
            // The Supervisor reaches Deployments only with the kubernetes backend; the
            // others render with either.
            let supervised = c
                .pools
                .iter()
                .any(|p| p.kubernetes.scaler == Some(Scaler::Supervisor));
            c.supervisor_backend = match supervised || flags[5] {
                true => SupervisorBackend::Kubernetes,
                false => SupervisorBackend::External,
            };
            c.kubernetes.namespace = namespace;
            c.kubernetes.gateway.ingress.enabled = flags[0];
            c.kubernetes.prometheus.pod_monitor = flags[1];
            c.kubernetes.network_policy.enabled = flags[2];
            c.kubernetes.prometheus.adapter_rules = flags[3];
            c.kubernetes.gateway.autoscaling.enabled = flags[4];
            c.drain_timeout_secs = drain;
            c.shutdown_delay_secs = delay;
            c.max_payload_bytes = payload;
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_valid_configuration_renders_uniquely_and_passes_check(c in cluster_strategy()) {
        let r = marie_deploy::render(&c).expect("a valid configuration renders");
        prop_assert_eq!(&marie_deploy::render(&c).expect("renders"), &r, "byte-stable");
        let mut seen = BTreeSet::new();
        for m in &r.manifests {
            prop_assert!(seen.insert((m.kind.clone(), m.name.clone())), "{} {} twice", m.kind, m.name);
        }
        let files: Vec<String> = r.files().expect("files").into_iter().map(|(n, _)| n).collect();
        prop_assert_eq!(files.iter().collect::<BTreeSet<_>>().len(), files.len());
        let docs = check::parse_stream("render", &r.stream()).expect("parses back");
        prop_assert_eq!(docs.len(), r.manifests.len());
        let findings = check::check(&docs, &Options { external_secrets: vec!["marie-cookie".into()] });
        prop_assert!(findings.is_empty(), "{:#?}", findings);
        marie_deploy::compose::compose(&c).expect("the Compose file renders");
    }
}
