//! `--format compose`: the guide's Docker Compose setup from the same plan as the
//! Kubernetes objects — the server with a volume, replicated gateways and one service
//! per pool (`deploy.replicas`, a GPU reservation for GPU pools), each stopped with the
//! grace period its drain needs. Replicas of a service share their environment, so
//! their names and advertised addresses are `auto`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::input::{Cluster, SupervisorBackend};
use crate::kube::pod::{CONFIG_PATH, DATA_DIR};
use crate::plan::{Plan, PoolPlan};
use crate::render::Error;

/// Where the cookie secret appears in a container.
const COOKIE_FILE: &str = "/run/secrets/marie-cookie";

#[derive(Serialize)]
struct ComposeFile {
    name: &'static str,
    services: BTreeMap<String, Service>,
    configs: BTreeMap<&'static str, InlineConfig>,
    secrets: BTreeMap<&'static str, FileSecret>,
    volumes: BTreeMap<&'static str, BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct InlineConfig {
    content: String,
}

#[derive(Serialize)]
struct FileSecret {
    file: &'static str,
}

#[derive(Serialize)]
struct Service {
    image: String,
    command: Vec<String>,
    environment: BTreeMap<&'static str, String>,
    configs: Vec<ConfigMount>,
    secrets: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<&'static str>,
    stop_grace_period: String,
    read_only: bool,
    tmpfs: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deploy: Option<Deploy>,
}

#[derive(Serialize)]
struct ConfigMount {
    source: &'static str,
    target: &'static str,
}

#[derive(Serialize)]
struct Deploy {
    replicas: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<DeployResources>,
}

#[derive(Serialize)]
struct DeployResources {
    reservations: Reservations,
}

#[derive(Serialize)]
struct Reservations {
    devices: Vec<Device>,
}

#[derive(Serialize)]
struct Device {
    driver: &'static str,
    count: u32,
    capabilities: Vec<&'static str>,
}

/// The gateways' published HTTP ports start here on the host.
const FIRST_HTTP_PORT: u32 = 54322;

fn node_service(plan: &Plan, args: &[&str], delay: u64, drain: u64) -> Service {
    let c = plan.cluster;
    let mut command: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    command.extend(["--config", CONFIG_PATH].map(String::from));
    let environment = BTreeMap::from([
        ("MARIE_NODE__NAME", "auto".to_owned()),
        ("MARIE_NODE__DATA_DIR", DATA_DIR.to_owned()),
        ("MARIE_NODE__DRAIN_TIMEOUT_SECS", drain.to_string()),
        ("MARIE_NODE__SHUTDOWN_DELAY_SECS", delay.to_string()),
        ("MARIE_CLUSTER__HOST", "0.0.0.0".to_owned()),
        ("MARIE_CLUSTER__ADVERTISE", "auto".to_owned()),
        (
            "MARIE_CLUSTER__SEEDS",
            format!("[\"marie-server:{}\"]", c.cluster_port),
        ),
        ("MARIE_CLUSTER__COOKIE_FILE", COOKIE_FILE.to_owned()),
        ("MARIE_HTTP__HOST", "0.0.0.0".to_owned()),
    ]);
    Service {
        image: c.kubernetes.image.clone(),
        command,
        environment,
        configs: vec![ConfigMount {
            source: "marie-config",
            target: CONFIG_PATH,
        }],
        secrets: vec!["marie-cookie"],
        volumes: Vec::new(),
        ports: Vec::new(),
        depends_on: vec!["marie-server"],
        stop_grace_period: format!("{}s", crate::plan::grace_period_secs(delay, drain)),
        read_only: true,
        tmpfs: vec!["/tmp", DATA_DIR],
        deploy: None,
    }
}

fn pool_service(plan: &Plan, pool: &PoolPlan) -> Service {
    let mut service = node_service(plan, &pool.node_args(), 0, pool.drain_timeout_secs);
    service.image = pool.image.clone();
    let replicas = match pool.bounds {
        Some(b) => b.min.max(1).min(b.max),
        None => pool.replicas,
    };
    service.deploy = Some(Deploy {
        replicas,
        resources: pool.gpu.then(|| DeployResources {
            reservations: Reservations {
                devices: vec![Device {
                    driver: "nvidia",
                    count: 1,
                    capabilities: vec!["gpu"],
                }],
            },
        }),
    });
    service
}

/// The Compose file of `cluster`.
pub fn compose(cluster: &Cluster) -> Result<String, Error> {
    let plan = Plan::new(cluster)?;
    let k = &cluster.kubernetes;
    let mut services = BTreeMap::new();
    let mut server = node_service(
        &plan,
        &["node", "--role", "server"],
        plan.front_shutdown_delay_secs,
        cluster.drain_timeout_secs,
    );
    server.environment.insert(
        "MARIE_CLUSTER__ADVERTISE",
        format!("marie-server:{}", cluster.cluster_port),
    );
    server.environment.remove("MARIE_CLUSTER__SEEDS");
    if cluster.supervisor_backend == SupervisorBackend::Kubernetes {
        // No Kubernetes API under Compose: the Supervisor decides and exports, and
        // each pool runs its `deploy.replicas`.
        server
            .environment
            .insert("MARIE_SUPERVISOR__BACKEND", "external".to_owned());
    }
    server.depends_on.clear();
    server.tmpfs = vec!["/tmp"];
    server.volumes = vec![format!("marie-data:{DATA_DIR}")];
    server.ports = vec![format!("{0}:{0}", cluster.cluster_port)];
    services.insert("marie-server".to_owned(), server);

    let gateways = match k.gateway.autoscaling.enabled {
        true => k.gateway.autoscaling.min_replicas,
        false => k.gateway.replicas,
    };
    let mut gateway = node_service(
        &plan,
        &["node", "--role", "gateway"],
        plan.front_shutdown_delay_secs,
        cluster.drain_timeout_secs,
    );
    gateway
        .environment
        .insert("MARIE_HTTP__READY_REQUIRES_EXECUTORS", "false".to_owned());
    let last_port = FIRST_HTTP_PORT + gateways.saturating_sub(1);
    gateway.ports = vec![format!(
        "{FIRST_HTTP_PORT}-{last_port}:{}",
        cluster.http_port
    )];
    gateway.deploy = Some(Deploy {
        replicas: gateways,
        resources: None,
    });
    services.insert("marie-gateway".to_owned(), gateway);
    for pool in &plan.pools {
        services.insert(pool.object_name.clone(), pool_service(&plan, pool));
    }
    let file = ComposeFile {
        name: "marie",
        services,
        configs: BTreeMap::from([(
            "marie-config",
            InlineConfig {
                // Compose interpolates `$`; `$$` is a literal one.
                content: cluster.cluster_toml.replace('$', "$$"),
            },
        )]),
        secrets: BTreeMap::from([(
            "marie-cookie",
            FileSecret {
                file: "./marie-cookie",
            },
        )]),
        volumes: BTreeMap::from([("marie-data", BTreeMap::new())]),
    };
    Ok(serde_norway::to_string(&file)?)
}
