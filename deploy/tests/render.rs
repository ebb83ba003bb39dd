//! The renderer: names, labels, derived numbers (grace periods, body size, read
//! timeout, QoS), scalers and refusals with what to change.

mod support;

use marie_deploy::check::{self, Options};
use marie_deploy::config::{Amount, Resources, Scaler};
use marie_deploy::{Cluster, Refusal, Render, SupervisorBackend};
use serde_json::Value;
use support::{bounds, cluster, pool};

fn render(c: &Cluster) -> Render {
    marie_deploy::render(c).expect("renders")
}

fn object(r: &Render, kind: &str, name: &str) -> Value {
    let m = r
        .manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"));
    serde_norway::from_str(&m.yaml).expect("parses")
}

fn has(r: &Render, kind: &str, name: &str) -> bool {
    r.manifests.iter().any(|m| m.kind == kind && m.name == name)
}

fn env(doc: &Value, name: &str) -> Option<String> {
    doc["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(String::from))
}

fn refusal(c: &Cluster) -> Refusal {
    match marie_deploy::render(c) {
        Err(marie_deploy::Error::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `c` with pool `name` autoscaled by `scaler`, and a Supervisor backend that renders:
/// `kubernetes` once a pool has `scaler = "supervisor"`, else `external`.
fn autoscaled(mut c: Cluster, name: &str, scaler: Scaler, zero: bool) -> Cluster {
    if c.supervisor_backend != SupervisorBackend::Kubernetes {
        c.supervisor_backend = match scaler {
            Scaler::Supervisor => SupervisorBackend::Kubernetes,
            _ => SupervisorBackend::External,
        };
    }
    let p = c.pools.iter_mut().find(|p| p.name == name).expect("pool");
    p.autoscale = Some(bounds(1, 4, zero));
    p.kubernetes.scaler = Some(scaler);
    c
}

#[test]
fn the_default_cluster_renders_every_core_object_and_passes_check() {
    let r = render(&cluster());
    for (kind, name) in [
        ("Namespace", "marie"),
        ("ServiceAccount", "marie-server"),
        ("ServiceAccount", "marie"),
        ("Service", "marie-server"),
        ("StatefulSet", "marie-server"),
        ("Deployment", "marie-gateway"),
        ("Service", "marie-gateway"),
        ("HorizontalPodAutoscaler", "marie-gateway"),
        ("PodDisruptionBudget", "marie-gateway-pdb"),
        ("Deployment", "marie-executor-gpu-ocr"),
        ("PodDisruptionBudget", "marie-executor-cpu-general"),
    ] {
        assert!(has(&r, kind, name), "no {kind}/{name}");
    }
    assert!(
        !has(&r, "Ingress", "marie-ingress"),
        "ingress is off by default"
    );
    let docs = check::parse_stream("render", &r.stream()).expect("parses");
    let findings = check::check(
        &docs,
        &Options {
            external_secrets: vec!["marie-cookie".into()],
        },
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn the_config_map_holds_cluster_toml_verbatim_under_a_content_hash() {
    let mut c = cluster();
    let r1 = render(&c);
    let cm = r1
        .manifests
        .iter()
        .find(|m| m.kind == "ConfigMap")
        .expect("config map");
    let doc: Value = serde_norway::from_str(&cm.yaml).expect("parses");
    assert_eq!(doc["data"]["cluster.toml"], c.cluster_toml.as_str());
    assert_eq!(doc["immutable"], true);
    assert!(cm.name.starts_with("marie-config-") && cm.name.len() == "marie-config-".len() + 10);
    let gateway = object(&r1, "Deployment", "marie-gateway");
    assert_eq!(
        gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"],
        cm.name.as_str()
    );
    c.cluster_toml.push_str("# changed\n");
    let r2 = render(&c);
    let cm2 = r2
        .manifests
        .iter()
        .find(|m| m.kind == "ConfigMap")
        .expect("config map");
    assert_ne!(
        cm.name, cm2.name,
        "a changed cluster.toml must roll the pods"
    );
    assert_eq!(
        render(&cluster()),
        r1,
        "the same input renders the same bytes"
    );
}

#[test]
fn grace_periods_cover_the_delay_the_http_close_the_drain_and_the_exit() {
    let mut c = cluster();
    c.pools[2].kubernetes.drain_timeout_secs = Some(300);
    let r = render(&c);
    let grace = |kind, name| {
        object(&r, kind, name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].clone()
    };
    // server and gateways: 5 (delay) + 5 + 30 + 15; executors: 0 + 5 + drain + 15.
    assert_eq!(grace("StatefulSet", "marie-server"), 55);
    assert_eq!(grace("Deployment", "marie-gateway"), 55);
    assert_eq!(grace("Deployment", "marie-executor-cpu-general"), 50);
    assert_eq!(grace("Deployment", "marie-executor-gpu-ocr"), 320);
    let gpu = object(&r, "Deployment", "marie-executor-gpu-ocr");
    assert_eq!(
        env(&gpu, "MARIE_NODE__DRAIN_TIMEOUT_SECS").as_deref(),
        Some("300")
    );
    assert_eq!(
        env(&gpu, "MARIE_NODE__SHUTDOWN_DELAY_SECS").as_deref(),
        Some("0")
    );
    c.shutdown_delay_secs = 8;
    let r = render(&c);
    let gw = object(&r, "Deployment", "marie-gateway");
    assert_eq!(
        gw["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        58
    );
    assert_eq!(
        env(&gw, "MARIE_NODE__SHUTDOWN_DELAY_SECS").as_deref(),
        Some("8")
    );
}

#[test]
fn pods_join_through_the_server_and_gateways_do_not_wait_for_executors() {
    let r = render(&cluster());
    let server = object(&r, "StatefulSet", "marie-server");
    assert_eq!(
        env(&server, "MARIE_CLUSTER__ADVERTISE").as_deref(),
        Some("$(MARIE_NODE__NAME).marie-server.marie.svc.cluster.local:52000")
    );
    let gw = object(&r, "Deployment", "marie-gateway");
    assert_eq!(
        env(&gw, "MARIE_CLUSTER__ADVERTISE").as_deref(),
        Some("$(POD_IP):52000")
    );
    assert_eq!(
        env(&gw, "MARIE_CLUSTER__SEEDS").as_deref(),
        Some("[\"marie-server-0.marie-server.marie.svc.cluster.local:52000\"]")
    );
    assert_eq!(
        env(&gw, "MARIE_HTTP__READY_REQUIRES_EXECUTORS").as_deref(),
        Some("false")
    );
    assert_eq!(
        env(&gw, "MARIE_CLUSTER__COOKIE_FILE").as_deref(),
        Some("/etc/marie/cookie/cookie")
    );
    let exec = object(&r, "Deployment", "marie-executor-extract");
    let args: Vec<&str> = exec["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        &args[..7],
        [
            "node",
            "--role",
            "executor",
            "--pool",
            "extract",
            "--executors",
            "1"
        ]
    );
    assert_eq!(env(&exec, "MARIE_HTTP__READY_REQUIRES_EXECUTORS"), None);
    let headless = object(&r, "Service", "marie-server");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
}

#[test]
fn the_gateway_service_names_its_ports_and_balances_without_affinity() {
    let r = render(&cluster());
    let svc = object(&r, "Service", "marie-gateway");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    let ports = svc["spec"]["ports"].as_array().expect("ports");
    assert_eq!(ports[0]["name"], "tcp-cluster");
    assert_eq!(ports[0]["appProtocol"], "tcp");
    assert_eq!(ports[0]["port"], 52000);
    assert_eq!(ports[1]["name"], "http");
    assert_eq!(ports[1]["port"], 8080);
    assert_eq!(ports[1]["targetPort"], "http");
    let gw = object(&r, "Deployment", "marie-gateway");
    let http = &gw["spec"]["template"]["spec"]["containers"][0]["ports"][1];
    assert_eq!(
        (http["name"].as_str(), http["containerPort"].as_i64()),
        (Some("http"), Some(54322))
    );
    assert!(
        gw["spec"]["replicas"].is_null(),
        "the HPA owns the gateway's replicas"
    );
    let pdb = object(&r, "PodDisruptionBudget", "marie-gateway-pdb");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
}

#[test]
fn the_ingress_body_size_and_timeouts_follow_the_payload_limit_and_the_long_poll() {
    assert_eq!(marie_deploy::kube::proxy_body_size(10 * 1024 * 1024), "11m");
    assert_eq!(
        marie_deploy::kube::proxy_body_size(1024 * 1024 - 64 * 1024),
        "1m"
    );
    assert_eq!(
        marie_deploy::kube::proxy_body_size(1024 * 1024 - 64 * 1024 + 1),
        "2m"
    );
    assert_eq!(marie_deploy::kube::proxy_timeout_secs(600), 610);
    let mut c = cluster();
    c.kubernetes.gateway.ingress.enabled = true;
    c.max_payload_bytes = 20 * 1024 * 1024;
    let ing = object(&render(&c), "Ingress", "marie-ingress");
    let a = &ing["metadata"]["annotations"];
    assert_eq!(a["nginx.ingress.kubernetes.io/proxy-body-size"], "21m");
    assert_eq!(a["nginx.ingress.kubernetes.io/proxy-read-timeout"], "610");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "http"
    );
}

#[test]
fn gpu_pools_are_guaranteed_on_gpu_nodes_with_the_guides_startup_probe() {
    let r = render(&cluster());
    let pod = &object(&r, "Deployment", "marie-executor-gpu-ocr")["spec"]["template"];
    let res = &pod["spec"]["containers"][0]["resources"];
    assert_eq!(
        res["requests"], res["limits"],
        "requests = limits: Guaranteed"
    );
    assert_eq!(res["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(res["limits"]["memory"], "16Gi");
    assert_eq!(
        pod["spec"]["nodeSelector"]["nvidia.com/gpu.present"],
        "true"
    );
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "nvidia.com/gpu");
    let startup = &pod["spec"]["containers"][0]["startupProbe"];
    assert_eq!(
        (
            startup["initialDelaySeconds"].as_i64(),
            startup["periodSeconds"].as_i64(),
            startup["failureThreshold"].as_i64()
        ),
        (Some(30), Some(10), Some(60))
    );
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "marieai/marie-rs:0.1.0-cuda"
    );
    let cpu = &object(&r, "Deployment", "marie-executor-cpu-general")["spec"]["template"];
    assert_ne!(
        cpu["spec"]["containers"][0]["resources"]["requests"],
        cpu["spec"]["containers"][0]["resources"]["limits"]
    );
    assert!(cpu["spec"]["tolerations"].is_null());
    for p in [pod, cpu] {
        assert_eq!(
            p["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"],
            "true"
        );
        assert_eq!(
            p["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                [0]["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname"
        );
        assert_eq!(
            p["spec"]["topologySpreadConstraints"][0]["topologyKey"],
            "topology.kubernetes.io/zone"
        );
    }
}

#[test]
fn a_gpu_pool_whose_requests_differ_from_its_limits_is_refused() {
    let mut c = cluster();
    let text = |v: &str| Amount::Text(v.into());
    c.pools[2].kubernetes.resources = Some(Resources {
        requests: [
            ("cpu".to_owned(), text("2")),
            ("memory".to_owned(), text("8Gi")),
        ]
        .into(),
        limits: [
            ("cpu".to_owned(), text("4")),
            ("memory".to_owned(), text("16Gi")),
        ]
        .into(),
    });
    let r = refusal(&c);
    assert!(matches!(r, Refusal::GpuNotGuaranteed { .. }), "{r}");
    assert!(r.to_string().contains("requests = limits"), "{r}");
}

#[test]
fn each_scaler_renders_alone_and_fixed_pools_keep_their_replicas() {
    let mut c = autoscaled(cluster(), "gpu-ocr", Scaler::Keda, true);
    c = autoscaled(c, "cpu-general", Scaler::Hpa, false);
    c = autoscaled(c, "extract", Scaler::Supervisor, false);
    c.pools.push(pool("batch", false));
    let r = render(&c);
    let so = object(&r, "ScaledObject", "marie-executor-gpu-ocr");
    assert_eq!(so["spec"]["minReplicaCount"], 0);
    assert_eq!(so["spec"]["maxReplicaCount"], 4);
    assert_eq!(so["spec"]["cooldownPeriod"], 300);
    assert_eq!(
        so["spec"]["triggers"][0]["metadata"]["query"],
        "sum(marie_jobs_pending{executor=\"gpu-ocr\",namespace=\"marie\"})"
    );
    assert_eq!(so["spec"]["triggers"][0]["metadata"]["threshold"], "4");
    let hpa = object(&r, "HorizontalPodAutoscaler", "marie-executor-cpu-general");
    let metrics = hpa["spec"]["metrics"].as_array().expect("metrics");
    assert_eq!(metrics.len(), 2);
    for m in metrics {
        assert_eq!(
            m["external"]["metric"]["selector"]["matchLabels"]["executor"],
            "cpu-general"
        );
    }
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        300
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"],
        2
    );
    for scaled in ["gpu-ocr", "cpu-general", "extract"] {
        let d = object(&r, "Deployment", &format!("marie-executor-{scaled}"));
        assert!(
            d["spec"]["replicas"].is_null(),
            "{scaled} has a scaler and no replicas"
        );
    }
    assert!(
        !has(&r, "ScaledObject", "marie-executor-extract")
            && !has(&r, "HorizontalPodAutoscaler", "marie-executor-extract")
    );
    assert_eq!(
        object(&r, "Deployment", "marie-executor-batch")["spec"]["replicas"],
        2
    );
    assert!(!has(&r, "HorizontalPodAutoscaler", "marie-executor-batch"));
}

#[test]
fn contradictory_configurations_are_refused_with_what_to_do() {
    let mut c = cluster();
    c.kubernetes.server.replicas = Some(2);
    assert!(
        refusal(&c)
            .to_string()
            .contains("set store.backend = \"postgres\"")
    );

    let c = autoscaled(cluster(), "gpu-ocr", Scaler::Hpa, true);
    assert!(refusal(&c).to_string().contains("use scaler = \"keda\""));

    let mut c = autoscaled(cluster(), "gpu-ocr", Scaler::Keda, true);
    c.supervisor_backend = SupervisorBackend::Local;
    assert!(
        refusal(&c)
            .to_string()
            .contains("set supervisor.backend = \"external\"")
    );

    let mut c = cluster();
    c.pools[0].kubernetes.scaler = Some(Scaler::Keda);
    assert!(refusal(&c).to_string().contains("add that table"));

    let mut c = autoscaled(cluster(), "extract", Scaler::Keda, false);
    c.pools[1].kubernetes.scaler = Some(Scaler::None);
    assert!(refusal(&c).to_string().contains("remove the table"));

    let mut c = cluster();
    c.pools[0].name = "CPU_general".into();
    assert!(
        refusal(&c).to_string().contains("rename")
            || refusal(&c).to_string().contains("pool names")
    );

    let mut c = cluster();
    c.kubernetes.security.run_as_user = 0;
    assert_eq!(refusal(&c), Refusal::RootUser);

    let mut c = cluster();
    c.kubernetes.gateway.autoscaling.min_replicas = 6;
    assert!(refusal(&c).to_string().contains("lower min"));
}

#[test]
fn a_drain_past_the_cluster_autoscalers_cap_is_a_warning() {
    let mut c = cluster();
    c.pools[2].kubernetes.drain_timeout_secs = Some(900);
    let r = render(&c);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("gpu-ocr") && w.contains("max-graceful-termination-sec")),
        "{:?}",
        r.warnings
    );
    assert!(render(&cluster()).warnings.is_empty());
}

#[test]
fn files_are_one_per_object_listed_by_the_kustomization() {
    let mut c = cluster();
    c.kubernetes.prometheus.adapter_rules = true;
    let files = render(&c).files().expect("files");
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let kustomization = &files
        .iter()
        .find(|(n, _)| n == "kustomization.yaml")
        .expect("kustomization")
        .1;
    let listed = marie_deploy::rendered_files(kustomization);
    for name in &names {
        assert!(
            listed.iter().any(|l| l == name) || *name == "kustomization.yaml",
            "{name} is not listed"
        );
    }
    assert!(names.contains(&"deployment-marie-executor-gpu-ocr.yaml"));
    assert!(names.contains(&marie_deploy::ADAPTER_RULES_FILE));
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "file names collide");
}

#[test]
fn compose_runs_the_same_nodes_with_replicas_gpus_and_the_drain() {
    let mut c = autoscaled(cluster(), "gpu-ocr", Scaler::Keda, true);
    c.pools[2].kubernetes.drain_timeout_secs = Some(300);
    let yaml = marie_deploy::compose::compose(&c).expect("renders");
    let doc: Value = serde_norway::from_str(&yaml).expect("parses");
    let s = &doc["services"];
    assert_eq!(s["marie-gateway"]["deploy"]["replicas"], 2);
    assert_eq!(
        s["marie-gateway"]["environment"]["MARIE_NODE__NAME"],
        "auto"
    );
    assert_eq!(
        s["marie-gateway"]["environment"]["MARIE_CLUSTER__ADVERTISE"],
        "auto"
    );
    assert_eq!(
        s["marie-server"]["environment"]["MARIE_CLUSTER__ADVERTISE"],
        "marie-server:52000"
    );
    assert_eq!(s["marie-executor-cpu-general"]["deploy"]["replicas"], 2);
    assert_eq!(s["marie-executor-gpu-ocr"]["deploy"]["replicas"], 1);
    assert_eq!(
        s["marie-executor-gpu-ocr"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"]
            [0],
        "gpu"
    );
    assert_eq!(s["marie-executor-gpu-ocr"]["stop_grace_period"], "320s");
    assert_eq!(s["marie-gateway"]["stop_grace_period"], "55s");
    assert_eq!(
        doc["configs"]["marie-config"]["content"],
        c.cluster_toml.as_str()
    );
}

/// The pod spec of a workload.
fn pod_spec(doc: &Value) -> &Value {
    &doc["spec"]["template"]["spec"]
}

/// The `fieldRef.fieldPath` of the environment variable `name` of a workload.
fn env_field(doc: &Value, name: &str) -> Option<String> {
    pod_spec(doc)["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| {
            e["valueFrom"]["fieldRef"]["fieldPath"]
                .as_str()
                .map(String::from)
        })
}

#[test]
fn supervisor_pools_get_a_role_bound_to_the_server_alone_and_only_the_server_a_token() {
    let mut c = autoscaled(cluster(), "extract", Scaler::Supervisor, false);
    c = autoscaled(c, "cpu-general", Scaler::Supervisor, true);
    c = autoscaled(c, "gpu-ocr", Scaler::Keda, true);
    assert_eq!(c.supervisor_backend, SupervisorBackend::Kubernetes);
    let r = render(&c);
    let role = object(&r, "Role", "marie-supervisor");
    assert_eq!(
        role["rules"],
        serde_json::json!([
            {
                "apiGroups": ["apps"],
                "resources": ["deployments/scale"],
                "resourceNames": ["marie-executor-cpu-general", "marie-executor-extract"],
                "verbs": ["get", "patch"]
            },
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["list", "watch", "patch"]
            }
        ])
    );
    assert_eq!(role["metadata"]["namespace"], "marie");
    let binding = object(&r, "RoleBinding", "marie-supervisor");
    assert_eq!(
        binding["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "marie-supervisor"})
    );
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "marie-server", "namespace": "marie"}])
    );
    let server = object(&r, "StatefulSet", "marie-server");
    assert_eq!(pod_spec(&server)["serviceAccountName"], "marie-server");
    assert_eq!(pod_spec(&server)["automountServiceAccountToken"], true);
    assert_eq!(
        env_field(&server, "MARIE_SUPERVISOR__KUBERNETES__NAMESPACE").as_deref(),
        Some("metadata.namespace")
    );
    assert_eq!(
        object(&r, "ServiceAccount", "marie-server")["automountServiceAccountToken"],
        true
    );
    assert_eq!(
        object(&r, "ServiceAccount", "marie")["automountServiceAccountToken"],
        false
    );
    for (kind, name) in [
        ("Deployment", "marie-gateway"),
        ("Deployment", "marie-executor-extract"),
        ("Deployment", "marie-executor-gpu-ocr"),
    ] {
        let pods = object(&r, kind, name);
        assert_eq!(pod_spec(&pods)["serviceAccountName"], "marie", "{name}");
        assert_eq!(
            pod_spec(&pods)["automountServiceAccountToken"],
            false,
            "{name}"
        );
    }
    let extract = object(&r, "Deployment", "marie-executor-extract");
    assert!(
        extract["spec"]["replicas"].is_null(),
        "the Supervisor owns the replicas"
    );
    let docs = check::parse_stream("render", &r.stream()).expect("parses");
    let findings = check::check(
        &docs,
        &Options {
            external_secrets: vec!["marie-cookie".into()],
        },
    );
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn without_a_supervisor_pool_nothing_calls_the_api() {
    for backend in [SupervisorBackend::Kubernetes, SupervisorBackend::External] {
        let mut c = autoscaled(cluster(), "gpu-ocr", Scaler::Keda, true);
        c = autoscaled(c, "cpu-general", Scaler::Hpa, false);
        c.supervisor_backend = backend;
        let r = render(&c);
        assert!(!has(&r, "Role", "marie-supervisor"), "{backend:?}");
        assert!(!has(&r, "RoleBinding", "marie-supervisor"), "{backend:?}");
        let server = object(&r, "StatefulSet", "marie-server");
        assert_eq!(pod_spec(&server)["automountServiceAccountToken"], false);
        assert_eq!(
            env_field(&server, "MARIE_SUPERVISOR__KUBERNETES__NAMESPACE"),
            None
        );
        assert_eq!(
            object(&r, "ServiceAccount", "marie-server")["automountServiceAccountToken"],
            false
        );
    }
}

#[test]
fn a_supervisor_pool_without_the_kubernetes_backend_is_refused() {
    for backend in [
        SupervisorBackend::External,
        SupervisorBackend::Local,
        SupervisorBackend::Process,
    ] {
        let mut c = autoscaled(cluster(), "extract", Scaler::Supervisor, false);
        c.supervisor_backend = backend;
        let r = refusal(&c);
        assert!(
            matches!(&r, Refusal::SupervisorWithoutKubernetes { pool, .. } if pool == "extract"),
            "{r}"
        );
        let message = r.to_string();
        assert!(
            message.contains(&format!("supervisor.backend = \"{}\"", backend.as_str()))
                && message.contains("set supervisor.backend = \"kubernetes\""),
            "{message}"
        );
    }
    // A pool left to the default scaler is the Supervisor's when it is autoscaled.
    let mut c = cluster();
    c.supervisor_backend = SupervisorBackend::External;
    c.pools[1].autoscale = Some(bounds(1, 4, false));
    assert!(matches!(
        refusal(&c),
        Refusal::SupervisorWithoutKubernetes { .. }
    ));
}

#[test]
fn compose_runs_the_supervisor_as_external_where_there_is_no_kubernetes_api() {
    let c = autoscaled(cluster(), "extract", Scaler::Supervisor, false);
    let doc: Value = serde_norway::from_str(&marie_deploy::compose::compose(&c).expect("renders"))
        .expect("parses");
    let server = &doc["services"]["marie-server"]["environment"];
    assert_eq!(server["MARIE_SUPERVISOR__BACKEND"], "external");
    assert_eq!(
        doc["services"]["marie-executor-extract"]["deploy"]["replicas"],
        1
    );
    let c = autoscaled(cluster(), "extract", Scaler::Keda, false);
    let doc: Value = serde_norway::from_str(&marie_deploy::compose::compose(&c).expect("renders"))
        .expect("parses");
    assert!(doc["services"]["marie-server"]["environment"]["MARIE_SUPERVISOR__BACKEND"].is_null());
}
