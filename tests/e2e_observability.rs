//! Observability end to end: a real Prometheus scrapes a real `marie up` (and answers
//! the KEDA queries and prometheus-adapter rules `marie k8s render` writes), and a real
//! OTLP receiver (in this test) collects a job's spans.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use common::{Marie, free_port, http_get, marie_bin, stderr, stdout};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

/// Bound of every wait for a state: generous, for a machine busy with other work.
const WAIT: Duration = Duration::from_secs(60);

/// Two pools: one kept busy with long jobs, one idle.
const TWO_POOLS: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 2
slots = 4
handlers = ["echo", "sleep"]

[[executor.pools]]
name = "extract"
replicas = 1
slots = 4
handlers = ["echo"]
"#;

/// The namespace the scrape target is in, as a PodMonitor's target labels say.
const NAMESPACE: &str = "marie";

/// The pools of TWO_POOLS as a Kubernetes cluster scales them by `scaler` ("keda": a
/// ScaledObject each, "hpa": the guide's External-metric HPA each), with the
/// prometheus-adapter rules.
fn kubernetes_config(scaler: &str) -> String {
    let mut config = format!(
        "[supervisor]\nbackend = \"external\"\n\n[kubernetes]\nnamespace = \"{NAMESPACE}\"\n\n[kubernetes.prometheus]\nadapter_rules = true\n"
    );
    for (pool, handlers) in [
        ("cpu-general", r#"["echo", "sleep"]"#),
        ("extract", r#"["echo"]"#),
    ] {
        config += &format!(
            "\n[[executor.pools]]\nname = \"{pool}\"\nslots = 4\nhandlers = {handlers}\n\n[executor.pools.autoscale]\nmin = 1\nmax = 4\n\n[executor.pools.kubernetes]\nscaler = \"{scaler}\"\nkeda = {{ signal = \"pending\" }}\n"
        );
    }
    config
}

/// `marie k8s render --out DIR` of `config`: the folder of rendered files.
fn render(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a render folder");
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, config).expect("write the config");
    let out = Command::new(marie_bin())
        .args(["k8s", "render", "--config"])
        .arg(&file)
        .arg("--out")
        .arg(dir.path().join("k8s"))
        .output()
        .expect("run marie k8s render");
    assert!(out.status.success(), "marie k8s render: {}", stderr(&out));
    dir
}

/// A rendered YAML file, as JSON.
fn rendered(dir: &tempfile::TempDir, file: &str) -> Value {
    let path = dir.path().join("k8s").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no {} in the render: {e}", path.display()));
    serde_norway::from_str(&text).expect("rendered YAML")
}

/// A Prometheus server scraping one target every second, stopped on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn scrape(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().expect("prometheus dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: marie\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n        labels: {{namespace: {NAMESPACE}}}\n"
            ),
        )
        .expect("prometheus.yml");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`prometheus` must be installed (scripts/test installs the Debian package)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// Evaluates `query` now, asked the way KEDA's prometheus scaler asks (`GET
    /// /api/v1/query` with the query and an RFC 3339 `time`); returns (executor label,
    /// value) pairs, one per element of the result.
    fn query(&self, query: &str) -> Vec<(String, String)> {
        let base = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = reqwest::Url::parse_with_params(&base, &[("query", query), ("time", &now)])
            .expect("a query URL");
        let Ok(response) = reqwest::blocking::get(url) else {
            return Vec::new();
        };
        let body: Value = response.json().unwrap_or_default();
        let mut rows: Vec<(String, String)> = body["data"]["result"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|r| {
                        let pool = r["metric"]["executor"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        (pool, r["value"][1].as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.sort();
        rows
    }

    /// The series `selector` matches (the adapter's discovery): (name, executor) pairs.
    fn series(&self, selector: &str) -> Vec<(String, String)> {
        let base = format!("http://127.0.0.1:{}/api/v1/series", self.port);
        let url =
            reqwest::Url::parse_with_params(&base, &[("match[]", selector)]).expect("a series URL");
        let body: Value = reqwest::blocking::get(url)
            .and_then(|r| r.json())
            .unwrap_or_default();
        let mut series: Vec<(String, String)> = body["data"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|s| {
                        let label = |name: &str| s[name].as_str().unwrap_or_default().to_owned();
                        (label("__name__"), label("executor"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        series.sort();
        series
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capacity_over_http(http_port: u16) -> Value {
    reqwest::blocking::get(format!("http://127.0.0.1:{http_port}/api/capacity"))
        .and_then(|r| r.json())
        .expect("GET /api/capacity")
}

#[test]
fn prometheus_evaluates_the_guides_expressions_to_what_api_capacity_says() {
    let http_port = free_port();
    let marie = Marie::start_with(
        Some(TWO_POOLS),
        &[("MARIE_HTTP__PORT", &http_port.to_string())],
    );
    // 8 jobs, longer than the test, fill cpu-general's slots; 12 more wait. extract
    // stays idle.
    for _ in 0..20 {
        let out = marie.cli_with_stdin(
            &["submit", "--pool", "cpu-general", "--handler", "sleep"],
            b"3600000",
        );
        assert!(out.status.success());
    }
    let prometheus = Prometheus::scrape(http_port);
    let deadline = Instant::now() + WAIT;
    while prometheus.query("marie_executor_slots_available").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped marie's /metrics"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The slots the node reports: (used, available) of cpu-general and of extract.
    let slots = || {
        let capacity = capacity_over_http(http_port);
        let pool = |name: &str| {
            let pools = capacity["result"]["slots"].as_array().expect("slots");
            let pool = pools.iter().find(|p| p["name"] == name).expect("pool");
            (pool["used"].as_u64(), pool["available"].as_u64())
        };
        (pool("cpu-general"), pool("extract"))
    };
    let deadline = Instant::now() + WAIT;
    while slots().0 != (Some(8), Some(0)) {
        assert!(
            Instant::now() < deadline,
            "cpu-general's slots never filled: {:?}",
            slots()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(slots(), ((Some(8), Some(0)), (Some(0), Some(4))));

    let pair = |busy: &str, idle: &str| {
        vec![
            ("cpu-general".to_owned(), busy.to_owned()),
            ("extract".to_owned(), idle.to_owned()),
        ]
    };
    // The value a scrape ago may trail the jobs' start by a scrape or more: poll.
    let expect = |query: &str, want: Vec<(String, String)>| {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = prometheus.query(query);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{query}: got {got:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    expect("marie_executor_slots_available", pair("0", "4"));
    expect(
        "marie_executor_slots_used / (marie_executor_slots_used + marie_executor_slots_available) * 100",
        pair("100", "0"),
    );
    expect(
        "marie_jobs_pending / marie_executor_slots_available",
        pair("+Inf", "0"),
    );
    expect("marie_jobs_pending", pair("12", "0"));
    let queued: Value = serde_json::from_str(&stdout(
        &marie.cli(&["jobs", "--state", "queued", "--json"]),
    ))
    .expect("jobs");
    assert_eq!(queued["jobs"].as_array().map(Vec::len), Some(12));

    // KEDA: each pool's rendered ScaledObject query is one value, its pending jobs (more
    // than one element and KEDA's scaler fails).
    let keda = render(&kubernetes_config("keda"));
    for (pool, pending) in [("cpu-general", "12"), ("extract", "0")] {
        let scaled = rendered(&keda, &format!("scaledobject-marie-executor-{pool}.yaml"));
        let query = scaled["spec"]["triggers"][0]["metadata"]["query"]
            .as_str()
            .expect("the ScaledObject's query");
        expect(query, vec![(String::new(), pending.to_owned())]);
    }

    // prometheus-adapter: its seriesQuery discovers both gauges of both pools, and its
    // metricsQuery, expanded for each rendered HPA metric's selector and the HPA's
    // namespace, is one series: that pool's.
    let hpa = render(&kubernetes_config("hpa"));
    let rule = &rendered(&hpa, "prometheus-adapter-rules.yaml")["rules"]["external"][0];
    let discovered = prometheus.series(rule["seriesQuery"].as_str().expect("seriesQuery"));
    for pool in ["cpu-general", "extract"] {
        for metric in ["marie_jobs_pending", "marie_executor_slots_used"] {
            assert!(
                discovered.contains(&(metric.to_owned(), pool.to_owned())),
                "the adapter would not find {metric} of {pool}: {discovered:?}"
            );
        }
    }
    let namespace_label = rule["resources"]["overrides"]
        .as_object()
        .and_then(|o| o.iter().find(|(_, r)| r["resource"] == "namespace"))
        .map(|(label, _)| label.clone())
        .expect("the rule maps a label to the namespace");
    let metrics_query = rule["metricsQuery"].as_str().expect("metricsQuery");
    let current = [
        (
            "marie_jobs_pending",
            [("cpu-general", "12"), ("extract", "0")],
        ),
        (
            "marie_executor_slots_used",
            [("cpu-general", "8"), ("extract", "0")],
        ),
    ];
    for pool in ["cpu-general", "extract"] {
        let autoscaler = rendered(
            &hpa,
            &format!("horizontalpodautoscaler-marie-executor-{pool}.yaml"),
        );
        let metrics = autoscaler["spec"]["metrics"]
            .as_array()
            .expect("HPA metrics");
        assert_eq!(metrics.len(), current.len(), "{autoscaler}");
        for metric in metrics {
            let name = metric["external"]["metric"]["name"]
                .as_str()
                .expect("metric name");
            let mut matchers: Vec<String> = metric["external"]["metric"]["selector"]["matchLabels"]
                .as_object()
                .expect("a per-pool selector")
                .iter()
                .map(|(label, value)| format!("{label}={value}"))
                .collect();
            matchers.push(format!("{namespace_label}=\"{NAMESPACE}\""));
            let query = metrics_query
                .replace("<<.Series>>", name)
                .replace("<<.LabelMatchers>>", &matchers.join(","));
            let (_, values) = current
                .iter()
                .find(|(metric, _)| *metric == name)
                .unwrap_or_else(|| panic!("an HPA metric this test does not know: {name}"));
            let (_, value) = values.iter().find(|(p, _)| *p == pool).expect("pool");
            expect(&query, vec![(pool.to_owned(), (*value).to_owned())]);
        }
    }
}

/// Spans received on POST /v1/traces.
type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP trace receiver on a free port, served from its own thread.
fn otlp_receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let port = free_port();
    let spans = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let app = Router::new().route(
                "/v1/traces",
                post(move |body: Bytes| {
                    let spans = spans.clone();
                    async move {
                        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace request");
                        let mut spans = spans.lock().expect("lock");
                        for resource in request.resource_spans {
                            for scope in resource.scope_spans {
                                spans.extend(scope.spans);
                            }
                        }
                        Bytes::from(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default().encode_to_vec())
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    (port, received)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

#[test]
fn a_job_is_one_trace_from_submit_to_completion() {
    let (otlp_port, received) = otlp_receiver();
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let marie = Marie::start_with(
        None,
        &[
            ("MARIE_HTTP__PORT", &free_port().to_string()),
            ("MARIE_TELEMETRY__OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let out = marie.cli_with_stdin(
        &[
            "submit",
            "--pool",
            "cpu-general",
            "--handler",
            "echo",
            "--wait",
            "--json",
        ],
        b"traced",
    );
    let line: Value = serde_json::from_str(stdout(&out).trim()).expect("submit JSON");
    assert_eq!(line["state"], "succeeded");
    let id = line["id"].as_str().expect("id").to_owned();

    let names = [
        "job.submit",
        "job.queued",
        "job.leased",
        "job.execute",
        "job.complete",
    ];
    let deadline = Instant::now() + WAIT;
    let spans = loop {
        let spans: Vec<Span> = received
            .lock()
            .expect("lock")
            .iter()
            .filter(|s| attribute(s, "job.id").as_deref() == Some(id.as_str()))
            .cloned()
            .collect();
        if names.iter().all(|n| spans.iter().any(|s| s.name == *n)) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans of job {id} never all arrived: {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let span = |name: &str| spans.iter().find(|s| s.name == name).expect("span").clone();
    let submit = span("job.submit");
    assert!(
        submit.parent_span_id.is_empty(),
        "the submit span is the root"
    );
    for s in &spans {
        assert_eq!(
            s.trace_id, submit.trace_id,
            "{} is in another trace",
            s.name
        );
        assert_eq!(
            attribute(s, "pool").as_deref(),
            Some("cpu-general"),
            "{}",
            s.name
        );
    }
    for child in ["job.queued", "job.leased", "job.complete"] {
        assert_eq!(
            span(child).parent_span_id,
            submit.span_id,
            "{child} hangs below job.submit"
        );
    }
    let (leased, execute) = (span("job.leased"), span("job.execute"));
    assert_eq!(
        execute.parent_span_id, leased.span_id,
        "the run hangs below its lease"
    );
    for s in [&leased, &execute] {
        assert_eq!(attribute(s, "attempt").as_deref(), Some("1"), "{}", s.name);
        assert_eq!(
            attribute(s, "handler").as_deref(),
            Some("echo"),
            "{}",
            s.name
        );
        assert_eq!(
            attribute(s, "outcome").as_deref(),
            Some("succeeded"),
            "{}",
            s.name
        );
    }
    assert_eq!(
        attribute(&span("job.complete"), "outcome").as_deref(),
        Some("succeeded")
    );
    assert!(span("job.queued").start_time_unix_nano <= leased.start_time_unix_nano);
    // The job's status names its trace (the console's job page shows it).
    let (status, body) =
        http_get(&marie.http_url(&format!("/api/jobs/{id}"))).expect("GET /api/jobs/{id}");
    assert_eq!(status, 200, "{body}");
    let job: Value = serde_json::from_str(&body).expect("JSON");
    let trace_id: String = submit.trace_id.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(job["result"]["trace_id"], trace_id.as_str(), "{job}");
}
