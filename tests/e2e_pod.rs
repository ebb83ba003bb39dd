//! What a node in a pod needs, end to end with real `marie` processes on 127.0.0.1:
//! nodes that name themselves, refusal of two nodes with one name, the store's lock on
//! its data dir, executor nodes' probes, and server + gateway + executor started from
//! the environment `marie k8s render` gives their pods.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cluster::{COOKIE, Cluster, Node, shipped_config};
use common::{Marie, free_port, http_get, marie_bin, wait_exit, wait_for_status};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Bound of every wait for a cluster to form or a state to show.
const FORM: Duration = Duration::from_secs(60);

const CPU_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 4
handlers = ["echo", "sleep"]
"#;

/// Waits until `log()` contains every one of `needles`.
fn wait_for_log(what: &str, log: impl Fn() -> String, needles: &[&str]) {
    let deadline = Instant::now() + FORM;
    while !needles.iter().all(|n| log().contains(n)) {
        assert!(
            Instant::now() < deadline,
            "{what} did not log {needles:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn nodes_started_from_the_shipped_cluster_toml_name_themselves_and_connect() {
    let cluster = Cluster::shipped();
    let server = cluster.start("server", &["node", "--role", "server"], &[]);
    let executor = cluster.start(
        "executor",
        &["node", "--role", "executor", "--pool", "cpu-general"],
        &[],
    );
    // The shipped pool: 2 executors × 4 slots.
    cluster.wait_for_capacity(server.port, "cpu-general", 8, FORM);
    let capacity = cluster.capacity(server.port).expect("capacity");
    let holders = capacity["result"]["slots"][0]["holders"].clone();
    let executor_node = format!("-{}-cpu-general-1", executor.port);
    assert!(
        holders.as_array().is_some_and(|h| h
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.ends_with(&executor_node)))),
        "executors are not named <hostname>-<port>-<pool>-<i>: {holders}"
    );
    let server_name = format!("-{}", server.port);
    let executor_name = format!("-{}", executor.port);
    wait_for_nodes(&server, |names| {
        names.iter().any(|n| n.ends_with(&server_name))
            && names.iter().any(|n| n.ends_with(&executor_name))
    });
}

/// Waits until the names of the nodes `node` sees up satisfy `want`.
fn wait_for_nodes(node: &Node, want: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + FORM;
    loop {
        let nodes: Value = http_get(&node.http_url("/api/nodes"))
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default();
        let names: Vec<String> = nodes["result"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["status"] == "up")
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .collect();
        if want(&names) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not all meet: {nodes}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_nodes_given_one_name_refuse_each_other_and_say_so() {
    let cluster = Cluster::new(CPU_POOL);
    let twin = [("MARIE_NODE__NAME", "twin")];
    let server = cluster.start("server", &["node", "--role", "server"], &twin);
    let executor = cluster.start(
        "executor",
        &["node", "--role", "executor", "--pool", "cpu-general"],
        &twin,
    );
    let server_addr = format!("127.0.0.1:{}", server.port);
    let executor_addr = format!("127.0.0.1:{}", executor.port);
    let fix = "Every node needs its own node.name";
    wait_for_log(
        "the server",
        || server.logs(),
        &[
            &format!(
                "refused node twin at {executor_addr}: this node at {server_addr} has the same name"
            ),
            fix,
        ],
    );
    wait_for_log(
        "the executor node",
        || executor.logs(),
        &[
            &format!(
                "refused node twin at {server_addr}: this node at {executor_addr} has the same name"
            ),
            fix,
        ],
    );
}

#[test]
fn a_second_node_on_the_same_data_dir_exits_with_the_lock_message() {
    let first = Marie::start();
    let log = first.dir().join("second.log");
    let child = first
        .command()
        .env("MARIE_CLUSTER__PORT", free_port().to_string())
        .env("MARIE_HTTP__PORT", free_port().to_string())
        .arg("up")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start a second marie up");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let clean = wait_exit(child, FORM, read_log);
    let stderr = read_log();
    let data_dir = first.dir().join("data");
    assert!(!clean, "the second node exited cleanly:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "the job store in {} is in use by marie pid",
            data_dir.display()
        )) && stderr.contains("give this one its own data dir"),
        "{stderr}"
    );
    // The first one still serves.
    assert!(first.cli(&["capacity"]).status.success());
}

#[test]
fn an_executor_node_serves_probes_and_metrics_and_is_ready_once_registered() {
    let cluster = Cluster::new(CPU_POOL);
    // The executor node first: no server to register with yet.
    let mut executor = cluster.start(
        "executor",
        &["node", "--role", "executor", "--pool", "cpu-general"],
        &[("MARIE_NODE__SHUTDOWN_DELAY_SECS", "300")],
    );
    let logs = || executor.logs();
    wait_for_status(&executor.http_url("/healthz"), 200, FORM, logs);
    let body = wait_for_status(&executor.http_url("/readyz"), 503, FORM, logs);
    assert!(body.contains("not connected"), "{body}");
    let metrics = reqwest::blocking::get(executor.http_url("/metrics")).expect("GET /metrics");
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let api = http_get(&executor.http_url("/api/capacity")).expect("an answer");
    assert_eq!(api.0, 404, "an executor node serves no job API: {api:?}");

    let _server = cluster.start("server", &["node", "--role", "server"], &[]);
    wait_for_status(&executor.http_url("/readyz"), 200, FORM, || executor.logs());

    executor.signal(Signal::SIGTERM);
    let body = wait_for_status(&executor.http_url("/readyz"), 503, FORM, || executor.logs());
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(
        http_get(&executor.http_url("/healthz")).map(|a| a.0),
        Some(200)
    );
    assert!(executor.is_running());
}

/// The objects `marie k8s render` makes of the shipped cluster.toml.
fn render() -> Vec<Value> {
    let out = std::process::Command::new(marie_bin())
        .args(["k8s", "render", "--out", "-", "--config"])
        .arg(shipped_config())
        .output()
        .expect("run marie k8s render");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect()
}

/// The object of `kind` named `name`.
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the render has no {kind} {name}"))
}

/// Where a pod's paths and peers are on this machine.
struct Host<'a> {
    /// The node's folder (its data dir is `data` in it).
    dir: &'a Path,
    /// The cookie file.
    cookie: &'a Path,
    /// The ConfigMap's cluster.toml, written out.
    config: &'a Path,
    /// The server's DNS name in the render, and its cluster port here.
    server: (&'a str, u16),
    /// This node's cluster and HTTP ports here.
    ports: (u16, u16),
}

/// The args and environment of the pod of `workload` named `pod`, as Kubernetes would
/// give them, with what only exists in a pod (its IP, the server's DNS name, mounted
/// files, the container ports) mapped onto this machine. An entry the test does not
/// know how Kubernetes fills fails it, so a render the node cannot run breaks here.
fn pod(workload: &Value, pod: &str, host: &Host) -> (Vec<String>, Vec<(String, String)>) {
    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let here = |value: &str, own_port: bool| {
        let port = if own_port {
            host.ports.0
        } else {
            host.server.1
        };
        value
            .replace(host.server.0, "127.0.0.1")
            .replace(":52000", &format!(":{port}"))
            .replace(
                "/var/lib/marie",
                &host.dir.join("data").display().to_string(),
            )
            .replace(
                "/etc/marie/cookie/cookie",
                &host.cookie.display().to_string(),
            )
            .replace(
                "/etc/marie/cluster.toml",
                &host.config.display().to_string(),
            )
    };
    let args = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| here(a.as_str().expect("an arg"), false))
        .collect();
    let mut env: Vec<(String, String)> = Vec::new();
    for entry in container["env"].as_array().expect("env") {
        let name = entry["name"].as_str().expect("a name").to_string();
        let value = match (
            &entry["value"],
            &entry["valueFrom"]["fieldRef"]["fieldPath"],
        ) {
            (Value::String(value), _) => {
                let mut value = value.clone();
                for (k, v) in &env {
                    value = value.replace(&format!("$({k})"), v);
                }
                here(&value, name == "MARIE_CLUSTER__ADVERTISE")
            }
            (_, Value::String(field)) if field == "metadata.name" => pod.to_string(),
            (_, Value::String(field)) if field == "status.podIP" => "127.0.0.1".to_string(),
            _ => panic!("the test does not know how a pod gets {entry}"),
        };
        assert!(
            !value.contains("$(") && !value.contains(".svc."),
            "{name}={value} is left pod-only"
        );
        env.push((name, value));
    }
    env.push(("MARIE_CLUSTER__PORT".into(), host.ports.0.to_string()));
    env.push(("MARIE_HTTP__PORT".into(), host.ports.1.to_string()));
    (args, env)
}

/// The value of `key` in `env`.
fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the pod has no {key}: {env:?}"))
}

#[test]
fn server_gateway_and_executor_pods_from_the_render_form_a_cluster_and_a_gateway_drains_behind_readyz()
 {
    let objects = render();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("cluster.toml");
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("the render's ConfigMap");
    std::fs::write(
        &config,
        config_map["data"]["cluster.toml"]
            .as_str()
            .expect("cluster.toml"),
    )
    .expect("write the config");
    let cookie = dir.path().join("cookie");
    std::fs::write(&cookie, format!("{COOKIE}\n")).expect("write the cookie");

    let server_set = object(&objects, "StatefulSet", "marie-server");
    let server_env = &server_set["spec"]["template"]["spec"]["containers"][0]["env"];
    let server_advertise = server_env
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "MARIE_CLUSTER__ADVERTISE")
        .and_then(|e| e["value"].as_str())
        .expect("the server advertises its stable name")
        // Its pod's name, as Kubernetes expands it.
        .replace("$(MARIE_NODE__NAME)", "marie-server-0");
    let server_host = server_advertise.rsplit_once(':').expect("host:port").0;
    let server_port = free_port();

    let start = |workload: &Value, name: &str, extra: &[(&str, &str)]| -> Node {
        let node_dir = dir.path().join(name);
        let ports = if name == "marie-server-0" {
            (server_port, free_port())
        } else {
            (free_port(), free_port())
        };
        let host = Host {
            dir: &node_dir,
            cookie: &cookie,
            config: &config,
            server: (server_host, server_port),
            ports,
        };
        let (args, mut env) = pod(workload, name, &host);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Node::start(name, node_dir, ports, args, env)
    };

    let mut server = start(server_set, "marie-server-0", &[]);
    let gateway_deployment = object(&objects, "Deployment", "marie-gateway");
    let (_, gateway_env) = pod(
        gateway_deployment,
        "probe",
        &Host {
            dir: dir.path(),
            cookie: &cookie,
            config: &config,
            server: (server_host, server_port),
            ports: (1, 1),
        },
    );
    assert!(
        env_value(&gateway_env, "MARIE_NODE__SHUTDOWN_DELAY_SECS")
            .parse::<u64>()
            .is_ok_and(|d| d > 0),
        "gateway pods get a shutdown delay"
    );
    // Held in its delay for as long as the checks below need, however slow the machine.
    let gateway = start(
        gateway_deployment,
        "marie-gateway-6b7c9d5f4-k2x4z",
        &[("MARIE_NODE__SHUTDOWN_DELAY_SECS", "600")],
    );
    let executor = start(
        object(&objects, "Deployment", "marie-executor-cpu-general"),
        "marie-executor-cpu-general-5f6d7c8b9-q9w8e",
        &[],
    );

    // The gateway is ready without waiting for the pools no executor serves here.
    wait_for_status(&gateway.http_url("/readyz"), 200, FORM, || gateway.logs());
    wait_for_status(&executor.http_url("/readyz"), 200, FORM, || executor.logs());
    let pods = [
        "marie-server-0",
        gateway.name.as_str(),
        executor.name.as_str(),
    ];
    wait_for_nodes(&gateway, |names| {
        pods.iter().all(|p| names.iter().any(|n| n == p))
    });
    let job: Value = reqwest::blocking::Client::new()
        .post(gateway.http_url("/api/jobs?pool=cpu-general&handler=echo"))
        .body("from a pod")
        .send()
        .and_then(|r| r.json())
        .expect("submit through the gateway");
    let id = job["result"]["id"].as_str().expect("a job id");
    let status: Value =
        reqwest::blocking::get(gateway.http_url(&format!("/api/jobs/{id}?wait=60")))
            .and_then(|r| r.json())
            .expect("the job's status");
    assert_eq!(status["result"]["state"], "succeeded", "{status}");
    assert_eq!(
        status["result"]["executor"],
        format!("{}-cpu-general-1", executor.name)
    );

    // SIGTERM: /readyz turns 503 while the gateway still answers everything else.
    let mut gateway = gateway;
    gateway.signal(Signal::SIGTERM);
    let body = wait_for_status(&gateway.http_url("/readyz"), 503, FORM, || gateway.logs());
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(
        http_get(&gateway.http_url("/healthz")).map(|a| a.0),
        Some(200)
    );
    assert_eq!(
        http_get(&gateway.http_url("/api/capacity")).map(|a| a.0),
        Some(200)
    );
    assert!(gateway.is_running(), "the gateway left before its delay");

    // The server, with the render's own delay, serves it out and then stops cleanly.
    server.signal(Signal::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(120)),
        "{}",
        server.logs()
    );
}
