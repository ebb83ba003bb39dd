//! The server StatefulSet by store: one pod owning SQLite on its volume, or with
//! Postgres several (a leader and standbys) sharing the store, its URL from a Secret,
//! a PDB, spread over hosts and zones, every one of them a seed; and the `check` rules
//! that keep one writer per SQLite volume and the URL out of the manifests.

mod support;

use marie_deploy::check::{self, Document, Finding, Options};
use marie_deploy::{Cluster, Refusal, Render, Store};
use serde_json::{Value, json};
use support::cluster;

const SERVER: &str = "marie-server";
const ADVERTISE: &str = "$(MARIE_NODE__NAME).marie-server.marie.svc.cluster.local:52000";

fn postgres(replicas: Option<u32>) -> Cluster {
    let mut c = cluster();
    c.store = Store::Postgres;
    c.kubernetes.server.replicas = replicas;
    c
}

fn render(c: &Cluster) -> Render {
    marie_deploy::render(c).expect("renders")
}

fn refusal(c: &Cluster) -> Refusal {
    match marie_deploy::render(c) {
        Err(marie_deploy::Error::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn object(r: &Render, kind: &str, name: &str) -> Option<Value> {
    r.manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .map(|m| serde_norway::from_str(&m.yaml).expect("parses"))
}

fn server(r: &Render) -> Value {
    object(r, "StatefulSet", SERVER).expect("the server StatefulSet")
}

/// The environment variable `name` of a workload's container, whole.
fn var(doc: &Value, name: &str) -> Option<Value> {
    doc["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

fn value(doc: &Value, name: &str) -> Option<String> {
    var(doc, name).and_then(|e| e["value"].as_str().map(String::from))
}

fn seeds(replicas: u32) -> String {
    let addresses: Vec<String> = (0..replicas)
        .map(|i| format!("\"marie-server-{i}.marie-server.marie.svc.cluster.local:52000\""))
        .collect();
    format!("[{}]", addresses.join(","))
}

fn with_secrets(secrets: &[&str]) -> Options {
    Options {
        external_secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn findings(docs: &[Document], options: &Options) -> Vec<Finding> {
    check::check(docs, options)
}

fn docs(r: &Render) -> Vec<Document> {
    check::parse_stream("render", &r.stream()).expect("parses")
}

#[test]
fn with_postgres_two_servers_share_the_store_its_url_from_the_secret() {
    let r = render(&postgres(None));
    let s = server(&r);
    assert_eq!(
        s["spec"]["replicas"], 2,
        "a leader and a standby by default"
    );
    assert!(s["spec"]["volumeClaimTemplates"].is_null(), "{s:#}");
    assert_eq!(s["spec"]["podManagementPolicy"], "Parallel");
    let from_secret = json!({"name": "MARIE_STORE__URL", "valueFrom": {"secretKeyRef": {"name": "marie-store", "key": "url"}}});
    assert_eq!(var(&s, "MARIE_STORE__URL"), Some(from_secret.clone()));
    assert_eq!(
        value(&s, "MARIE_CLUSTER__ADVERTISE").as_deref(),
        Some(ADVERTISE)
    );
    assert_eq!(value(&s, "MARIE_CLUSTER__SEEDS"), Some(seeds(2)));
    assert_eq!(
        value(&s, "MARIE_HTTP__READY_REQUIRES_EXECUTORS").as_deref(),
        Some("false")
    );
    // The pod's name is defined before the advertise that expands it.
    let env = s["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    let at = |name: &str| env.iter().position(|e| e["name"] == name);
    assert!(at("MARIE_NODE__NAME") < at("MARIE_CLUSTER__ADVERTISE"));

    let gateway = object(&r, "Deployment", "marie-gateway").expect("gateways");
    assert_eq!(var(&gateway, "MARIE_STORE__URL"), Some(from_secret));
    assert_eq!(value(&gateway, "MARIE_CLUSTER__SEEDS"), Some(seeds(2)));
    let executor = object(&r, "Deployment", "marie-executor-extract").expect("a pool");
    assert_eq!(value(&executor, "MARIE_CLUSTER__SEEDS"), Some(seeds(2)));
    assert_eq!(
        var(&executor, "MARIE_STORE__URL"),
        None,
        "executors never open the store"
    );
    assert!(!r.stream().contains("postgres://"));
}

#[test]
fn several_servers_have_a_pdb_and_spread_over_hosts_and_zones() {
    let r = render(&postgres(Some(3)));
    let s = server(&r);
    assert_eq!(s["spec"]["replicas"], 3);
    assert_eq!(value(&s, "MARIE_CLUSTER__SEEDS"), Some(seeds(3)));
    let pdb = object(&r, "PodDisruptionBudget", SERVER).expect("the servers' PDB");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app"], SERVER);
    let pod = &s["spec"]["template"]["spec"];
    let term =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        term["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        term["podAffinityTerm"]["labelSelector"]["matchLabels"]["app"],
        SERVER
    );
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["whenUnsatisfiable"], "ScheduleAnyway");
    let found = findings(&docs(&r), &with_secrets(&["marie-cookie", "marie-store"]));
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn one_postgres_server_has_no_pdb_and_no_seeds() {
    let r = render(&postgres(Some(1)));
    let s = server(&r);
    assert_eq!(s["spec"]["replicas"], 1);
    assert!(s["spec"]["volumeClaimTemplates"].is_null());
    assert!(var(&s, "MARIE_STORE__URL").is_some());
    assert_eq!(value(&s, "MARIE_CLUSTER__SEEDS"), None);
    assert!(object(&r, "PodDisruptionBudget", SERVER).is_none());
}

#[test]
fn with_sqlite_one_server_owns_the_store_on_its_volume() {
    let r = render(&cluster());
    let s = server(&r);
    assert_eq!(s["spec"]["replicas"], 1);
    assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        s["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    assert_eq!(
        value(&s, "MARIE_CLUSTER__ADVERTISE").as_deref(),
        Some(ADVERTISE)
    );
    assert_eq!(value(&s, "MARIE_CLUSTER__SEEDS"), None);
    assert_eq!(value(&s, "MARIE_HTTP__READY_REQUIRES_EXECUTORS"), None);
    assert!(!r.stream().contains("MARIE_STORE__URL"));
    assert!(s["spec"]["template"]["spec"]["affinity"].is_null());
    assert!(object(&r, "PodDisruptionBudget", SERVER).is_none());
    let gateway = object(&r, "Deployment", "marie-gateway").expect("gateways");
    assert_eq!(value(&gateway, "MARIE_CLUSTER__SEEDS"), Some(seeds(1)));
}

#[test]
fn more_than_one_server_without_postgres_is_refused_naming_the_fix() {
    for store in [Store::Sqlite, Store::Memory] {
        let mut c = cluster();
        c.store = store;
        c.kubernetes.server.replicas = Some(2);
        let message = refusal(&c).to_string();
        assert!(
            message.contains(&format!("store.backend = \"{}\"", store.as_str())),
            "{message}"
        );
        assert!(
            message.contains("set store.backend = \"postgres\""),
            "{message}"
        );
    }
    let mut c = cluster();
    c.kubernetes.server.replicas = Some(0);
    assert!(
        refusal(&c)
            .to_string()
            .contains("kubernetes.server.replicas is 0")
    );
    let mut c = postgres(None);
    c.kubernetes.store_secret = "Marie_Store".into();
    assert!(refusal(&c).to_string().contains("kubernetes.store_secret"));
}

#[test]
fn a_store_url_in_the_file_the_config_map_ships_is_refused() {
    let mut c = postgres(None);
    c.store_url_in_file = true;
    let message = refusal(&c).to_string();
    assert!(message.contains("Secret \"marie-store\""), "{message}");
    assert!(message.contains("remove it from the file"), "{message}");
}

#[test]
fn check_wants_the_store_secret_created_apart_like_the_cookie() {
    let d = docs(&render(&postgres(None)));
    let found = findings(&d, &with_secrets(&["marie-cookie"]));
    assert!(
        found
            .iter()
            .any(|f| f.message.contains("Secret \"marie-store\"")),
        "{found:#?}"
    );
}

fn find<'a>(docs: &'a mut [Document], kind: &str, name: &str) -> &'a mut Value {
    &mut docs
        .iter_mut()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
        .value
}

#[test]
fn check_finds_two_servers_on_volumes_of_their_own() {
    let options = with_secrets(&["marie-cookie"]);
    let mut d = docs(&render(&cluster()));
    assert!(findings(&d, &options).is_empty());
    find(&mut d, "StatefulSet", SERVER)["spec"]["replicas"] = json!(2);
    let found = findings(&d, &options);
    assert!(
        found
            .iter()
            .any(|f| f.object == "StatefulSet/marie-server"
                && f.message.contains("two SQLite writers")),
        "{found:#?}"
    );
    // Shared Postgres, no claim: several servers are fine.
    let options = with_secrets(&["marie-cookie", "marie-store"]);
    assert!(findings(&docs(&render(&postgres(Some(2)))), &options).is_empty());
}

#[test]
fn check_finds_a_store_url_written_in_a_manifest() {
    let mut d = docs(&render(&postgres(None)));
    let env = &mut find(&mut d, "Deployment", "marie-gateway")["spec"]["template"]["spec"]["containers"]
        [0]["env"];
    let url = env
        .as_array_mut()
        .expect("env")
        .iter_mut()
        .find(|e| e["name"] == "MARIE_STORE__URL")
        .expect("the store URL");
    *url = json!({"name": "MARIE_STORE__URL", "value": "postgres://marie:secret@db:5432/marie"});
    let found = findings(&d, &with_secrets(&["marie-cookie", "marie-store"]));
    assert!(
        found
            .iter()
            .any(|f| f.object == "Deployment/marie-gateway"
                && f.message.contains("password included")),
        "{found:#?}"
    );
}

/// The Compose file of `c`, parsed.
fn compose(c: &Cluster) -> Value {
    let yaml = marie_deploy::compose::compose(c).expect("the Compose file renders");
    serde_norway::from_str(&yaml).expect("parses")
}

#[test]
fn compose_with_postgres_runs_each_server_under_its_own_name_its_url_from_an_env_file() {
    let doc = compose(&postgres(Some(3)));
    let services = &doc["services"];
    assert!(services["marie-server"].is_null(), "{services:#}");
    let seeds = "[\"marie-server-0:52000\", \"marie-server-1:52000\", \"marie-server-2:52000\"]";
    for i in 0..3 {
        let server = &services[format!("marie-server-{i}").as_str()];
        let env = &server["environment"];
        assert_eq!(
            env["MARIE_CLUSTER__ADVERTISE"],
            format!("marie-server-{i}:52000")
        );
        assert_eq!(env["MARIE_CLUSTER__SEEDS"], seeds);
        assert!(env["MARIE_STORE__URL"].is_null());
        assert_eq!(server["env_file"], json!(["./marie-store.env"]));
        assert_eq!(server["ports"], json!([format!("{}:52000", 52000 + i)]));
        assert!(server["volumes"].is_null(), "no SQLite volume: {server:#}");
    }
    // Gateways commit submits themselves: the URL too; executors only join.
    let gateway = &services["marie-gateway"];
    assert_eq!(gateway["env_file"], json!(["./marie-store.env"]));
    assert_eq!(gateway["environment"]["MARIE_CLUSTER__SEEDS"], seeds);
    assert_eq!(
        gateway["depends_on"],
        json!(["marie-server-0", "marie-server-1", "marie-server-2"])
    );
    let executor = &services["marie-executor-extract"];
    assert!(executor["env_file"].is_null());
    assert_eq!(executor["environment"]["MARIE_CLUSTER__SEEDS"], seeds);
    assert!(doc["volumes"].is_null(), "{doc:#}");
    // A leader and a standby by default.
    let doc = compose(&postgres(None));
    assert!(doc["services"]["marie-server-1"].is_object());
    assert!(doc["services"]["marie-server-2"].is_null());
}

#[test]
fn compose_with_sqlite_runs_one_server_on_its_volume() {
    let doc = compose(&cluster());
    let services = &doc["services"];
    let server = &services["marie-server"];
    assert_eq!(server["volumes"], json!(["marie-data:/var/lib/marie"]));
    assert!(server["env_file"].is_null());
    assert!(services["marie-server-0"].is_null());
    assert_eq!(
        services["marie-gateway"]["environment"]["MARIE_CLUSTER__SEEDS"],
        "[\"marie-server:52000\"]"
    );
    assert!(doc["volumes"]["marie-data"].is_object());
}
