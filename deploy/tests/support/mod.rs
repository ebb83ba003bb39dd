//! Clusters the renderer's tests start from.
#![allow(dead_code)]

use marie_deploy::config::KubernetesConfig;
use marie_deploy::{Bounds, Cluster, Pool, Store, SupervisorBackend};

/// A pool as `cluster.toml`'s defaults have it.
pub fn pool(name: &str, gpu: bool) -> Pool {
    Pool {
        name: name.into(),
        replicas: 2,
        slots: 4,
        gpu,
        model: gpu,
        autoscale: None,
        kubernetes: Default::default(),
    }
}

/// Bounds of an autoscaled pool.
pub fn bounds(min: u32, max: u32, scale_to_zero: bool) -> Bounds {
    Bounds {
        min,
        max,
        scale_to_zero,
        last_executor_delay_secs: 300,
    }
}

/// The default cluster: three fixed pools, one with a GPU.
pub fn cluster() -> Cluster {
    Cluster {
        cluster_toml: "[node]\nname = \"auto\"\n".into(),
        kubernetes: KubernetesConfig::default(),
        cluster_port: 52000,
        http_port: 54322,
        drain_timeout_secs: 30,
        shutdown_delay_secs: 0,
        max_payload_bytes: 10 * 1024 * 1024,
        long_poll_secs: 600,
        store: Store::Sqlite,
        store_url_in_file: false,
        supervisor_backend: SupervisorBackend::Local,
        pools: vec![
            pool("cpu-general", false),
            pool("extract", false),
            pool("gpu-ocr", true),
        ],
    }
}
