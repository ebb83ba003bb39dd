//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`; `scripts/test` installs them), driven over WebDriver against a
//! real `marie up`: documents submitted through the page go queued, running and
//! succeeded; a running job is cancelled from its page and the store agrees; a burst
//! shows on the executor plot with the Supervisor's decision and its reason; with
//! `http.auth_token` the page is refused until it is given the token.
//!
//! Each test saves screenshots of the pages it visits under `target/tmp/console/`; with
//! `MARIE_CONSOLE_SCREENSHOTS=<dir>` set, also into that folder (the README's pictures
//! are made with `MARIE_CONSOLE_SCREENSHOTS=$PWD/docs`).

mod common;

use std::future::Future;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Marie, free_port};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// One browser at a time: Chromium and a node per test are a lot for two cores.
static BROWSER: Mutex<()> = Mutex::new(());

/// Generous bound for anything the page shows (a busy 2-core machine).
const PAGE_LIMIT: Duration = Duration::from_secs(90);

/// A chromedriver process and its headless Chromium session, in a process group of
/// their own: dropping it (a failed test included) ends both.
struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    async fn open() -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-crash-reporter",
                "--window-size=1280,1000",
            ] }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Browser { driver, client }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run a script in the page")
    }

    /// Waits until `script` returns something truthy; returns it.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        wait_until(what, PAGE_LIMIT, || async {
            let value = self.eval(script).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false))
                && value != json!([])
                && value != json!("");
            truthy.then_some(value)
        })
        .await
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
        field.clear().await.expect("clear a field");
        field.send_keys(text).await.expect("type into a field");
    }

    /// Saves a screenshot of the page as `<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")];
        if let Some(dir) = std::env::var_os("MARIE_CONSOLE_SCREENSHOTS") {
            dirs.push(PathBuf::from(dir));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).expect("the screenshot folder");
            std::fs::write(dir.join(format!("{name}.png")), &png).expect("save a screenshot");
        }
    }

    /// Ends the session (Chromium quits), then chromedriver (on drop).
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.driver.id()) {
            let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// Polls `probe` every 250 ms until it gives a value, for at most `limit`.
async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn which(name: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("{name} is not on the PATH"))
}

/// Debian's chromedriver (package chromium-driver).
fn chromedriver() -> PathBuf {
    which("chromedriver").unwrap_or_else(|e| {
        panic!("{e}: install Debian's chromium and chromium-driver (scripts/test does)")
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// `GET path` on the node's API as JSON (with the bearer `token`, if any).
async fn api_get(marie: &Marie, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(marie.http_url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the HTTP API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Submits one `sleep` job of `ms` milliseconds to `pool` through the API.
async fn submit_sleep(marie: &Marie, pool: &str, ms: u64) -> String {
    let response = reqwest::Client::new()
        .post(marie.http_url(&format!("/api/jobs?pool={pool}&handler=sleep")))
        .body(ms.to_string())
        .send()
        .await
        .expect("submit");
    assert_eq!(response.status().as_u16(), 202, "submit refused");
    let body: Value = response.json().await.expect("JSON");
    body["result"]["id"].as_str().expect("an id").to_owned()
}

/// The state of job `id` in the store, through the API.
async fn job_state(marie: &Marie, id: &str) -> String {
    let (_, body) = api_get(marie, &format!("/api/jobs/{id}"), None).await;
    body["result"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn wait_job_state(marie: &Marie, id: &str, state: &str) {
    wait_until(
        &format!("job {id} {state} in the store"),
        PAGE_LIMIT,
        || async { (job_state(marie, id).await == state).then_some(()) },
    )
    .await;
}

/// The documents of the Submit page's table: [[file, state, id], …].
const SUBMITTED: &str = "return [...document.querySelectorAll('#submitted-rows tr')]\
    .map(tr => [tr.children[0].textContent, tr.querySelector('.badge').dataset.state, tr.dataset.jobId]);";

fn states_of(rows: &Value) -> Vec<(String, String, String)> {
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            let text = |n: usize| row[n].as_str().unwrap_or_default().to_owned();
            (text(0), text(1), text(2))
        })
        .collect()
}

const ONE_SLOT: &str = r#"
[[executor.pools]]
name = "docs"
slots = 1
replicas = 1
handlers = ["sleep", "echo"]
"#;

#[test]
fn documents_submitted_through_the_page_queue_run_succeed_and_one_is_cancelled_from_its_page() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let marie = Marie::start_with(Some(ONE_SLOT), &[]);
    let files: Vec<PathBuf> = [("b.txt", "300"), ("c.txt", "300"), ("a.txt", "600000")]
        .iter()
        .map(|(name, body)| {
            let path = marie.dir().join(name);
            std::fs::write(&path, body).expect("write a document");
            path
        })
        .collect();
    runtime().block_on(async {
        // A job holding the pool's only slot keeps what the page submits queued.
        let blocker = submit_sleep(&marie, "docs", 600_000).await;
        wait_job_state(&marie, &blocker, "running").await;

        let browser = Browser::open().await;
        browser.goto(&marie.http_url("/#/submit")).await;
        browser
            .wait_for(
                "the pool in the Submit form",
                "return document.querySelector('#submit-pool option[value=docs]') !== null;",
            )
            .await;
        browser
            .client
            .find(Locator::Css("#submit-pool"))
            .await
            .expect("the pool field")
            .select_by_value("docs")
            .await
            .expect("choose the pool");
        browser.type_into("#submit-handler", "sleep").await;
        let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        browser
            .client
            .find(Locator::Css("#submit-files"))
            .await
            .expect("the file field")
            .send_keys(&paths.join("\n"))
            .await
            .expect("choose the documents");
        browser.click("#submit-go").await;

        let rows = browser
            .wait_for(
                "three documents queued on the Submit page",
                &format!(
                    "const rows = (() => {{ {SUBMITTED} }})();
                     return rows.length === 3 && rows.every(r => r[1] === 'queued') ? rows : null;"
                ),
            )
            .await;
        let rows = states_of(&rows);
        for (_, _, id) in &rows {
            assert_eq!(job_state(&marie, id).await, "queued");
        }
        browser.screenshot("console-submit").await;

        // Free the slot: the two short documents run and succeed, the long one runs.
        let (status, _) = {
            let response = reqwest::Client::new()
                .delete(marie.http_url(&format!("/api/jobs/{blocker}")))
                .send()
                .await
                .expect("cancel the blocker");
            (response.status().as_u16(), ())
        };
        assert_eq!(status, 200);
        let rows = browser
            .wait_for(
                "b and c succeeded, a running on the Submit page",
                &format!(
                    "const rows = (() => {{ {SUBMITTED} }})();
                     const st = f => (rows.find(r => r[0] === f) || [])[1];
                     return st('b.txt') === 'succeeded' && st('c.txt') === 'succeeded' && st('a.txt') === 'running' ? rows : null;"
                ),
            )
            .await;
        let submitted = states_of(&rows);
        let job_of = |name: &str| {
            submitted
                .iter()
                .find(|(file, _, _)| file == name)
                .map(|(_, _, id)| id.clone())
                .unwrap_or_else(|| panic!("no job for {name}: {submitted:?}"))
        };
        let (long, short) = (job_of("a.txt"), job_of("b.txt"));
        browser.screenshot("console-submit").await;

        // Its page, then Cancel: the page and the store say cancelled.
        browser
            .click(&format!("#submitted-rows tr[data-job-id='{long}'] a"))
            .await;
        browser
            .wait_for(
                "the job page with the job running",
                "return document.querySelector('#job-state')?.dataset.state === 'running'
                    && !document.querySelector('#cancel').disabled;",
            )
            .await;
        browser.screenshot("console-job").await;
        browser.click("#cancel").await;
        browser
            .wait_for(
                "the job page saying cancelled",
                "return document.querySelector('#job-state')?.dataset.state === 'cancelled';",
            )
            .await;
        assert_eq!(job_state(&marie, &long).await, "cancelled");

        // A succeeded job's result downloads from its page.
        browser
            .goto(&marie.http_url(&format!("/#/jobs/{short}")))
            .await;
        browser
            .wait_for(
                "the succeeded job's page offering its result",
                "return document.querySelector('#job-state')?.dataset.state === 'succeeded'
                    && !document.querySelector('#download').disabled;",
            )
            .await;
        browser.click("#download").await;
        browser
            .wait_for(
                "the result downloaded",
                "return document.querySelector('#job-said').textContent === 'Result downloaded.';",
            )
            .await;

        // The Jobs list, filtered by state.
        browser.goto(&marie.http_url("/#/jobs")).await;
        browser
            .wait_for(
                "the four jobs in the list",
                "return document.querySelectorAll('#job-rows tr').length === 4;",
            )
            .await;
        browser
            .client
            .find(Locator::Css("#filter-state"))
            .await
            .expect("the state filter")
            .select_by_value("succeeded")
            .await
            .expect("filter by state");
        browser
            .wait_for(
                "only the two succeeded jobs",
                "const rows = [...document.querySelectorAll('#job-rows tr')];
                 return rows.length === 2 && rows.every(r => r.querySelector('.badge').dataset.state === 'succeeded');",
            )
            .await;
        browser.screenshot("console-jobs").await;

        // Nodes: this node, up, since when.
        browser.goto(&marie.http_url("/#/nodes")).await;
        browser
            .wait_for(
                "this node up on the Nodes page",
                "const row = document.querySelector('#node-rows tr');
                 return row && row.querySelector('.badge').dataset.state === 'up'
                     && row.children[4].textContent.includes('ago');",
            )
            .await;
        browser.screenshot("console-nodes").await;
        browser.close().await;
    });
}

const BURST: &str = r#"
[supervisor]
backend = "local"
tick_ms = 200

[[executor.pools]]
name = "burst"
slots = 1
handlers = ["sleep", "echo"]
[executor.pools.autoscale]
min = 1
max = 4
scale_down_window_secs = 120

[[executor.pools]]
name = "zero"
slots = 2
handlers = ["echo"]
[executor.pools.autoscale]
min = 0
max = 2
scale_down_window_secs = 1
[executor.pools.autoscale.scale_to_zero]
enabled = true
idle_delay_secs = 1
last_executor_delay_secs = 2
"#;

#[test]
fn a_burst_shows_on_the_executor_plot_with_the_decision_and_its_reason() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let marie = Marie::start_with(Some(BURST), &[]);
    runtime().block_on(async {
        let browser = Browser::open().await;
        browser.goto(&marie.http_url("/")).await;
        browser
            .wait_for(
                "the zero pool shown scaled to zero",
                "return document.querySelector('[data-pool=zero] .pool-note')?.textContent.includes('scaled to zero');",
            )
            .await;
        let mut jobs = Vec::new();
        for _ in 0..12 {
            jobs.push(submit_sleep(&marie, "burst", 2_000).await);
        }
        let decision = browser
            .wait_for(
                "a scale-up decision with its reason in the burst pool",
                "const up = [...document.querySelectorAll('[data-pool=burst] .decision')]
                    .map(li => [li.querySelector('.change').textContent, li.querySelector('.reason').textContent])
                    .find(([change]) => { const m = change.match(/(\\d+) → (\\d+):/); return m && +m[2] > +m[1] && +m[2] >= 2; });
                 return up || null;",
            )
            .await;
        let reason = decision[1].as_str().unwrap_or_default();
        assert!(
            !reason.trim().is_empty(),
            "the decision {decision} has no reason"
        );
        let peak = browser
            .wait_for(
                "the executor plot of the burst pool rising to 2 or more",
                "const path = document.querySelector('[data-pool=burst] svg.plot-executors path.series-executors');
                 return path && +path.dataset.peak >= 2 ? +path.dataset.peak : null;",
            )
            .await;
        assert!(peak.as_u64().unwrap_or(0) <= 4, "more executors than max: {peak}");
        let (_, history) = api_get(&marie, "/api/history", None).await;
        let decisions = history["result"]["decisions"].as_array().cloned().unwrap_or_default();
        assert!(
            decisions.iter().any(|d| d["pool"] == "burst"
                && d["to"].as_u64() > d["from"].as_u64()
                && !d["reason"].as_str().unwrap_or_default().is_empty()),
            "no scale-up of burst with a reason in GET /api/history: {decisions:?}"
        );
        // A marker for the decision on the executor plot's time axis.
        browser
            .wait_for(
                "a decision marker on the executor plot",
                "return document.querySelectorAll('[data-pool=burst] svg.plot-executors .marker').length > 0;",
            )
            .await;
        for id in &jobs {
            wait_job_state(&marie, id, "succeeded").await;
        }
        browser
            .wait_for(
                "the burst's jobs drained from the queue and the slots",
                "return document.querySelector('[data-pool=burst] [data-fact=queue]')?.textContent === '0'
                    && document.querySelector('[data-pool=burst] .bar-text')?.textContent.startsWith('0 / ');",
            )
            .await;
        browser.screenshot("console-overview").await;

        // A narrow window: the pools stack, nothing runs off the side.
        browser
            .client
            .set_window_size(420, 900)
            .await
            .expect("a narrow window");
        browser
            .wait_for(
                "the overview fitting a narrow window",
                "const [a, b] = document.querySelectorAll('[data-pool]');
                 return document.documentElement.scrollWidth <= window.innerWidth
                     && a && b && b.getBoundingClientRect().top > a.getBoundingClientRect().bottom;",
            )
            .await;
        browser.screenshot("console-narrow").await;
        browser.close().await;
    });
}

#[test]
fn with_a_token_the_page_is_refused_until_it_is_given_the_token() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let marie = Marie::start_with(None, &[("MARIE_HTTP__AUTH_TOKEN", "s3cret")]);
    runtime().block_on(async {
        let (status, _) = api_get(&marie, "/api/capacity", None).await;
        assert_eq!(status, 401, "the API answers without the token");
        let page = reqwest::get(marie.http_url("/")).await.expect("the page");
        assert_eq!(
            page.status().as_u16(),
            200,
            "the page itself needs no token"
        );

        let browser = Browser::open().await;
        browser.goto(&marie.http_url("/")).await;
        browser
            .wait_for(
                "the token panel and the refusal",
                "return !document.querySelector('#token-panel').hidden
                    && document.querySelector('#live').textContent.includes('refused');",
            )
            .await;
        let pools = browser
            .eval("return document.querySelectorAll('[data-pool]').length;")
            .await;
        assert_eq!(pools, json!(0), "the page showed pools without the token");
        browser.screenshot("console-token").await;

        browser.type_into("#token", "wrong").await;
        browser.click("#token-form button").await;
        browser
            .wait_for(
                "the wrong token refused",
                "return !document.querySelector('#token-panel').hidden
                    && document.querySelector('#token-why').textContent.includes('refused');",
            )
            .await;
        assert_eq!(
            browser
                .eval("return document.querySelectorAll('[data-pool]').length;")
                .await,
            json!(0)
        );

        // By keyboard this time: the token, then Enter.
        browser.type_into("#token", "s3cret\u{E007}").await;
        browser
            .wait_for(
                "the pools once the token is given",
                "return document.querySelectorAll('[data-pool]').length > 0
                    && document.querySelector('#token-panel').hidden;",
            )
            .await;
        let url = browser.client.current_url().await.expect("the URL");
        assert!(
            !url.as_str().contains("s3cret"),
            "the token is in the URL {url}"
        );
        // Other pages use the kept token without asking again.
        browser.goto(&marie.http_url("/#/nodes")).await;
        browser
            .wait_for(
                "the Nodes page with the kept token",
                "return document.querySelectorAll('#node-rows tr').length > 0
                    && document.querySelector('#token-panel').hidden;",
            )
            .await;
        browser.close().await;
    });
}
