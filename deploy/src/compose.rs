//! `--format compose`: the guide's Docker Compose setup from the same plan as the
//! Kubernetes objects — the server, replicated gateways and one service per pool
//! (`deploy.replicas`, a GPU reservation for GPU pools), each stopped with the grace
//! period its drain needs. Replicas of a service share their environment, so their
//! names and advertised addresses are `auto`.
//!
//! With SQLite, one server service `marie-server` owns the store on a volume. With
//! Postgres, the plan's server count (`[kubernetes.server] replicas`, a leader and a
//! standby by default) as services `marie-server-0`, `marie-server-1`, …: each one
//! advertises its own stable name, as a server pod does, and all of them are every
//! node's seeds; no volume. The servers and the gateways, which commit submits
//! themselves, read the store's URL from the env file `marie-store.env` beside the
//! Compose file (`MARIE_STORE__URL=postgres://…`), never from the file itself.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::input::{Cluster, SupervisorBackend};
use crate::kube::pod::{CONFIG_PATH, DATA_DIR};
use crate::plan::{Plan, PoolPlan};
use crate::render::Error;

/// Where the cookie secret appears in a container.
const COOKIE_FILE: &str = "/run/secrets/marie-cookie";

/// The env file, beside the Compose file, that sets `MARIE_STORE__URL` for the server
/// and gateway services with the Postgres store.
pub const STORE_ENV_FILE: &str = "./marie-store.env";

/// The SQLite server's service (and with Postgres, the prefix of each server's).
const SERVER: &str = "marie-server";

#[derive(Serialize)]
struct ComposeFile {
    name: &'static str,
    services: BTreeMap<String, Service>,
    configs: BTreeMap<&'static str, InlineConfig>,
    secrets: BTreeMap<&'static str, FileSecret>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env_file: Vec<&'static str>,
    configs: Vec<ConfigMount>,
    secrets: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
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
        ("MARIE_CLUSTER__SEEDS", seeds(plan)),
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
        env_file: Vec::new(),
        secrets: vec!["marie-cookie"],
        volumes: Vec::new(),
        ports: Vec::new(),
        depends_on: server_names(plan),
        stop_grace_period: format!("{}s", crate::plan::grace_period_secs(delay, drain)),
        read_only: true,
        tmpfs: vec!["/tmp", DATA_DIR],
        deploy: None,
    }
}

/// The server services: `marie-server` alone, or one per server with Postgres.
fn server_names(plan: &Plan) -> Vec<String> {
    match plan.shared_store() {
        true => (0..plan.server_replicas)
            .map(|i| format!("{SERVER}-{i}"))
            .collect(),
        false => vec![SERVER.to_owned()],
    }
}

/// `MARIE_CLUSTER__SEEDS`: every server's address.
fn seeds(plan: &Plan) -> String {
    let port = plan.cluster.cluster_port;
    let addresses: Vec<String> = server_names(plan)
        .iter()
        .map(|name| format!("\"{name}:{port}\""))
        .collect();
    format!("[{}]", addresses.join(", "))
}

/// The server services, by name: each advertises its own name and publishes the
/// cluster port (the first on the configured port, the next ones above it); without
/// Postgres, the one server keeps its data on the volume `marie-data`.
fn server_services(plan: &Plan) -> Vec<(String, Service)> {
    let cluster = plan.cluster;
    let port = u32::from(cluster.cluster_port);
    server_names(plan)
        .into_iter()
        .zip(port..)
        .map(|(name, host_port)| {
            let mut server = node_service(
                plan,
                &["node", "--role", "server"],
                plan.front_shutdown_delay_secs,
                cluster.drain_timeout_secs,
            );
            server
                .environment
                .insert("MARIE_CLUSTER__ADVERTISE", format!("{name}:{port}"));
            if cluster.supervisor_backend == SupervisorBackend::Kubernetes {
                // No Kubernetes API under Compose: the Supervisor decides and exports,
                // and each pool runs its `deploy.replicas`.
                server
                    .environment
                    .insert("MARIE_SUPERVISOR__BACKEND", "external".to_owned());
            }
            server.depends_on.clear();
            server.ports = vec![format!("{host_port}:{port}")];
            if plan.shared_store() {
                server.env_file = vec![STORE_ENV_FILE];
            } else {
                server.environment.remove("MARIE_CLUSTER__SEEDS");
                server.tmpfs = vec!["/tmp"];
                server.volumes = vec![format!("marie-data:{DATA_DIR}")];
            }
            (name, server)
        })
        .collect()
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
    services.extend(server_services(&plan));

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
    if plan.shared_store() {
        // Gateways commit submits to Postgres themselves.
        gateway.env_file = vec![STORE_ENV_FILE];
    }
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
        volumes: match plan.shared_store() {
            true => BTreeMap::new(),
            false => BTreeMap::from([("marie-data", BTreeMap::new())]),
        },
    };
    Ok(serde_norway::to_string(&file)?)
}
