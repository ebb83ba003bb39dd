//! A Kubernetes cluster for the `kubernetes` backend's end-to-end test and bench: the
//! fake API server holding what `marie k8s render` writes for the test's cluster.toml
//! (the Role and RoleBinding `marie-supervisor`, the pool's Deployment), pods that are
//! real `marie node --role executor` processes, and a real `marie up` whose Supervisor
//! scales them through a kubeconfig carrying the server's service-account token.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use marie_kube_fake::{
    FakeApiServer, FakeOptions, JournalEntry, JournalEvent, PodStart, PodView, TerminationCause,
};
use serde_json::Value;

use crate::common::{Marie, free_port, marie_bin, stderr, stdout, write_files};

/// The namespace of the rendered objects and of the Supervisor.
pub const NAMESPACE: &str = "marie";
/// The one pool.
pub const POOL: &str = "sleep";
/// Its Deployment.
pub const DEPLOYMENT: &str = "marie-executor-sleep";
/// The user the server's token authenticates as.
pub const SERVER_USER: &str = "system:serviceaccount:marie:marie-server";
/// The cookie of the server and every pod.
const COOKIE: &str = "kube-test-cookie";
/// Every wait is bounded by this: generous, for a busy 2-core machine.
pub const WAIT: Duration = Duration::from_secs(180);

/// The pool's autoscale settings.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Fewest executors (pods).
    pub min: u32,
    /// Most executors.
    pub max: u32,
    /// Slots per executor.
    pub slots: u32,
    /// Whether an idle pool goes to zero pods.
    pub scale_to_zero: bool,
}

impl Pool {
    /// The cluster.toml of the server and of every pod.
    fn config(&self) -> String {
        let Pool {
            min,
            max,
            slots,
            scale_to_zero,
        } = self;
        let zero = match scale_to_zero {
            true => {
                "[executor.pools.autoscale.scale_to_zero]\nenabled = true\nidle_delay_secs = 1\nlast_executor_delay_secs = 2\n"
            }
            false => "",
        };
        format!(
            r#"
[supervisor]
backend = "kubernetes"
tick_ms = 100

[supervisor.kubernetes]
namespace = "{NAMESPACE}"
resync_ms = 500

[[executor.pools]]
name = "{POOL}"
slots = {slots}
handlers = ["sleep", "echo"]
[executor.pools.autoscale]
min = {min}
max = {max}
scale_down_window_secs = 2
{zero}"#
        )
    }
}

/// The fake API server with the rendered objects, and `marie up` scaling the pool's pods.
pub struct KubeCluster {
    pool: Pool,
    marie: Marie,
    fake: Option<FakeApiServer>,
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl KubeCluster {
    /// Renders `pool`'s cluster.toml, loads the rendered Role, RoleBinding and Deployment
    /// into a fake API server whose pods start after `pod_start_delay`, and starts
    /// `marie up` against it.
    pub fn start(pool: Pool, pod_start_delay: Duration) -> KubeCluster {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config_text = pool.config();
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, &config_text).expect("write the config");
        let rendered = render(&config, &dir.path().join("k8s"));
        let deployment = rendered(&format!("deployment-{DEPLOYMENT}.yaml"));
        let server_port = free_port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the fake API server");
        let runner = executor_pods(config, dir.path().join("pods"), server_port);
        let mut options = FakeOptions::new(NAMESPACE, runner)
            .service_account("marie-server")
            .pod_start_delay(pod_start_delay)
            .log_dir(dir.path().join("pod-logs"));
        // The kubelet probes as often as the rendered readiness probe says.
        options.probe_interval = readiness_period(&deployment);
        let fake = runtime
            .block_on(FakeApiServer::start(options))
            .expect("the fake API server starts");
        for object in [
            rendered("role-marie-supervisor.yaml"),
            rendered("rolebinding-marie-supervisor.yaml"),
            deployment,
        ] {
            fake.apply_yaml(&object).expect("the rendered object loads");
        }
        let kubeconfig = dir.path().join("kubeconfig");
        let token = fake.token("marie-server").expect("the server's token");
        fake.write_kubeconfig(&kubeconfig, token)
            .expect("write the kubeconfig");
        let marie = Marie::start_with(
            Some(&config_text),
            &[
                ("KUBECONFIG", &kubeconfig.display().to_string()),
                ("MARIE_CLUSTER__COOKIE", COOKIE),
                ("MARIE_CLUSTER__PORT", &server_port.to_string()),
            ],
        );
        KubeCluster {
            pool,
            marie,
            fake: Some(fake),
            runtime,
            dir,
        }
    }

    /// The server.
    pub fn marie(&self) -> &Marie {
        &self.marie
    }

    /// The server, to stop and restart it.
    pub fn marie_mut(&mut self) -> &mut Marie {
        &mut self.marie
    }

    /// The fake API server.
    pub fn fake(&self) -> &FakeApiServer {
        self.fake.as_ref().expect("the fake API server runs")
    }

    /// The Deployment's `spec.replicas`.
    pub fn replicas(&self) -> i32 {
        self.fake()
            .deployment(DEPLOYMENT)
            .and_then(|d| d.spec?.replicas)
            .unwrap_or(1)
    }

    /// The pool's pods not terminating, oldest first.
    pub fn live_pods(&self) -> Vec<PodView> {
        self.fake()
            .pods(DEPLOYMENT)
            .into_iter()
            .filter(|p| !p.terminating)
            .collect()
    }

    /// The journal.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.fake().journal()
    }

    /// Every change of the Deployment's replicas the server wrote: (from, to, entry).
    pub fn server_scales(&self) -> Vec<(i32, i32, JournalEntry)> {
        self.journal()
            .into_iter()
            .filter_map(|entry| match &entry.event {
                JournalEvent::Scaled { from, to, by, .. } if by == SERVER_USER => {
                    Some((*from, *to, entry.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// Reads of the Deployment's `/scale` by the server since `since` (a journal time).
    pub fn server_scale_reads_since(&self, since: Duration) -> usize {
        self.journal()
            .iter()
            .filter(|e| e.since_start > since)
            .filter(|e| {
                matches!(&e.event, JournalEvent::Request { method, path, user, .. }
                    if method == "GET"
                        && path.ends_with(&format!("/deployments/{DEPLOYMENT}/scale"))
                        && user.as_deref() == Some(SERVER_USER))
            })
            .count()
    }

    /// The requests the API server refused with `status`.
    pub fn requests_answered(&self, status: u16) -> Vec<String> {
        self.journal()
            .iter()
            .filter(|e| matches!(&e.event, JournalEvent::Request { status: s, .. } if *s == status))
            .map(ToString::to_string)
            .collect()
    }

    /// Pods the ReplicaSet removed on scale-down: those it chose as victims, and those it
    /// terminated for a scale-down (the two must agree).
    pub fn scale_down_victims(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut chosen = BTreeSet::new();
        let mut terminated = BTreeSet::new();
        for entry in self.journal() {
            match entry.event {
                JournalEvent::ScaleDownVictim { pod, .. } => {
                    chosen.insert(pod);
                }
                JournalEvent::PodTerminating {
                    pod,
                    cause: TerminationCause::ScaleDown,
                    ..
                } => {
                    terminated.insert(pod);
                }
                _ => {}
            }
        }
        (chosen, terminated)
    }

    /// The pods whose executors the Supervisor drained to scale down (its log names
    /// the executor `<pod>-<pool>-1`).
    pub fn drained_pods(&self) -> BTreeSet<String> {
        let suffix = format!("-{POOL}-1");
        self.marie
            .all_logs()
            .lines()
            .filter(|l| l.contains("draining executor to scale down"))
            .filter_map(|l| field(l, "executor"))
            .filter_map(|executor| executor.strip_suffix(&suffix).map(str::to_owned))
            .collect()
    }

    /// The journal and the server's log, to explain a failure.
    pub fn explain(&self) -> String {
        let journal: Vec<String> = self.journal().iter().map(ToString::to_string).collect();
        // The CLI's own connections, one per poll, would bury the rest.
        let log: Vec<String> = self
            .marie
            .all_logs()
            .lines()
            .filter(|l| !l.contains("ractor_cluster"))
            .map(str::to_owned)
            .collect();
        format!(
            "journal:\n{}\nserver log:\n{}",
            journal.join("\n"),
            log.join("\n")
        )
    }

    /// Polls `check` until it gives a value; fails after [`WAIT`] with the journal and
    /// the server's log.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}\n{}",
                self.explain()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the Deployment is set to `n` replicas and has exactly `n` live pods,
    /// each running an executor registered with the server.
    pub fn wait_for_pods(&self, n: usize) -> Vec<PodView> {
        self.wait_for(&format!("{n} pods with registered executors"), || {
            let pods = self.live_pods();
            let settled = self.replicas() == n as i32
                && pods.len() == n
                && self.fake().pods(DEPLOYMENT).len() == n
                && self.registered_executors() == n;
            settled.then_some(pods)
        })
    }

    /// Executors of the pool registered with the server and not draining (its
    /// capacity over the slots of one).
    pub fn registered_executors(&self) -> usize {
        let out = self.marie.cli(&["capacity"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let capacity = report["result"]["slots"]
            .as_array()
            .and_then(|pools| pools.iter().find(|p| p["name"] == POOL))
            .and_then(|p| p["capacity"].as_u64())
            .unwrap_or(0);
        (capacity / u64::from(self.pool.slots)) as usize
    }

    /// Submits `jobs` sleep jobs of `sleep_ms` each through the CLI; returns their ids.
    pub fn submit(&self, jobs: usize, sleep_ms: u64) -> Vec<String> {
        let inputs = self.dir.path().join(format!("in-{}", uuid_like()));
        let files = write_files(
            &inputs,
            (0..jobs).map(|_| sleep_ms.to_string().into_bytes()),
        );
        let mut args = vec!["submit", "--pool", POOL, "--handler", "sleep", "--json"];
        args.extend(files.iter().map(String::as_str));
        let out = self.marie.cli(&args);
        assert!(out.status.success(), "submit: {}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("JSON")["id"]
                    .as_str()
                    .expect("an id")
                    .to_owned()
            })
            .collect()
    }

    /// Submits one job through the HTTP API; answers the HTTP status, the job's id when
    /// accepted, and when the answer came.
    pub fn post_job(&self, handler: &str, body: &str) -> (u16, Option<String>, SystemTime) {
        let response = reqwest::blocking::Client::new()
            .post(
                self.marie
                    .http_url(&format!("/api/jobs?pool={POOL}&handler={handler}")),
            )
            .body(body.to_owned())
            .send()
            .expect("POST /api/jobs");
        let answered = SystemTime::now();
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or_default();
        let id = body["result"]["id"].as_str().map(str::to_owned);
        (status, id, answered)
    }

    /// The jobs the store holds as running, read through the HTTP API.
    pub fn running_jobs(&self) -> Vec<Value> {
        let page: Value =
            reqwest::blocking::get(self.marie.http_url("/api/jobs?state=running&limit=1000"))
                .and_then(|r| r.json())
                .unwrap_or_default();
        page["result"]["jobs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits for every job of `ids` to end; returns their statuses.
    pub fn wait_jobs(&self, ids: &[String]) -> Vec<Value> {
        let mut args = vec!["wait", "--json", "--timeout-secs", "600"];
        args.extend(ids.iter().map(String::as_str));
        let out = self.marie.cli(&args);
        let statuses: Vec<Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a status"))
            .collect();
        assert_eq!(
            statuses.len(),
            ids.len(),
            "wait: {}\n{}",
            stderr(&out),
            self.explain()
        );
        statuses
    }

    /// Asserts every job of `statuses` succeeded and the store ended each exactly once.
    pub fn assert_each_succeeded_once(&self, statuses: &[Value]) {
        let failed: Vec<&Value> = statuses
            .iter()
            .filter(|s| s["state"] != "succeeded")
            .collect();
        assert!(
            failed.is_empty(),
            "{} jobs did not succeed, e.g. {}",
            failed.len(),
            failed[0]
        );
        let ends = self.job_ends();
        let not_once: Vec<(&str, usize)> = statuses
            .iter()
            .filter_map(|s| s["id"].as_str())
            .map(|id| (id, ends.get(id).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 1)
            .collect();
        assert!(
            not_once.is_empty(),
            "jobs ended other than once (id, times): {not_once:?}"
        );
    }

    /// How often the store wrote each job's end ("job ended" in the server's log).
    fn job_ends(&self) -> HashMap<String, usize> {
        let mut ends = HashMap::new();
        for line in self.marie.all_logs().lines() {
            if line.contains("job ended")
                && let Some(id) = field(line, "job")
            {
                *ends.entry(id.to_owned()).or_default() += 1;
            }
        }
        ends
    }

    /// The value of the server's metric `name{executor="<pool>"}`, if exported.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::blocking::get(self.marie.http_url("/metrics"))
            .and_then(|r| r.text())
            .ok()?;
        let prefix = format!("{name}{{executor=\"{POOL}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for KubeCluster {
    /// The server goes first, then the fake API server and every pod's process.
    fn drop(&mut self) {
        self.marie.kill();
        if let Some(fake) = self.fake.take() {
            self.runtime.block_on(fake.stop());
        }
    }
}

/// The value of `name=` in a log line (quotes stripped).
pub fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line
        .split(&format!(" {name}="))
        .nth(1)?
        .split_whitespace()
        .next()?;
    Some(value.trim_matches('"'))
}

/// Runs `marie k8s render` on `config` into `out`; answers a reader of its files.
fn render(config: &Path, out: &Path) -> impl Fn(&str) -> String + use<> {
    let rendered = Command::new(marie_bin())
        .args(["k8s", "render", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run marie k8s render");
    assert!(
        rendered.status.success(),
        "marie k8s render: {}",
        stderr(&rendered)
    );
    let out = out.to_path_buf();
    move |file: &str| {
        std::fs::read_to_string(out.join(file))
            .unwrap_or_else(|e| panic!("the render wrote no {file}: {e}"))
    }
}

/// The readiness probe's period in the rendered Deployment.
fn readiness_period(deployment: &str) -> Duration {
    let value: Value = serde_norway::from_str(deployment).expect("the Deployment is YAML");
    let seconds =
        value["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"]
            .as_u64()
            .expect("the rendered Deployment has a readiness probe period");
    Duration::from_secs(seconds)
}

/// The kubelet's container: `marie node --role executor` for the pool of the pod's
/// Deployment, named after the pod, on loopback, joined to the server at `server_port`.
fn executor_pods(
    config: PathBuf,
    data: PathBuf,
    server_port: u16,
) -> impl Fn(&PodStart<'_>) -> tokio::process::Command + Send + Sync + 'static {
    move |start: &PodStart<'_>| {
        let pool = start
            .deployment
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get("marie.ai/pool"))
            .cloned()
            .unwrap_or_default();
        let port = free_port();
        let mut command = tokio::process::Command::new(marie_bin());
        command
            .arg("--config")
            .arg(&config)
            .args(["node", "--role", "executor", "--pool", &pool])
            .args(["--executors", "1", "--data-dir"])
            .arg(data.join(start.pod))
            .env("MARIE_NODE__NAME", start.pod)
            .env("MARIE_CLUSTER__HOST", "127.0.0.1")
            .env("MARIE_CLUSTER__PORT", port.to_string())
            .env("MARIE_CLUSTER__ADVERTISE", format!("127.0.0.1:{port}"))
            .env(
                "MARIE_CLUSTER__SEEDS",
                format!("[\"127.0.0.1:{server_port}\"]"),
            )
            .env("MARIE_CLUSTER__COOKIE", COOKIE)
            .env("MARIE_HTTP__HOST", "127.0.0.1")
            .env("MARIE_HTTP__PORT", start.http_port.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("KUBECONFIG")
            .env_remove("MARIE_HTTP__AUTH_TOKEN");
        command
    }
}

/// A name for a folder of inputs, unique in the test.
fn uuid_like() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
