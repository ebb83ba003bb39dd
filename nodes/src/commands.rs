//! The client commands: submit, status, wait, result, cancel, jobs, capacity.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use marie_client::Client;
use marie_protocol::messages::ListQuery;
use marie_protocol::{JobId, JobMetadata, JobSpec, JobState, JobStatus};
use serde_json::json;

use crate::cli::{Connect, SubmitArgs};
use crate::config::Config;
use crate::cookie;

/// Connects to the cluster named by `--connect` (or the configured port on loopback).
pub async fn connect(config: &Config, connect: &Connect) -> anyhow::Result<Client> {
    let addr = connect
        .connect
        .clone()
        .unwrap_or_else(|| format!("127.0.0.1:{}", config.cluster.port));
    let cookie = cookie::for_client(config, connect.cookie_file.as_deref())?;
    let tls = config.cluster.tls.as_ref();
    Ok(Client::connect_with(&addr, &cookie, tls, Duration::from_secs(5)).await?)
}

/// One submitted job.
struct Submission {
    id: JobId,
    /// Whether the cluster answered with an existing job (same reference).
    deduplicated: bool,
    /// How it ended, with --wait.
    end: Option<JobStatus>,
}

impl Submission {
    /// Not waited for, or waited for and succeeded.
    fn ended_well(&self) -> bool {
        self.end
            .as_ref()
            .is_none_or(|s| s.state == JobState::Succeeded)
    }
}

/// `marie submit`. Returns false if `--wait` saw a job that did not succeed.
pub async fn submit(client: &Client, args: SubmitArgs) -> anyhow::Result<bool> {
    let inputs = read_inputs(&args.files)?;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !args.ref_id.is_empty() && inputs.len() > 1 {
        anyhow::bail!("--ref-id names one document; submit one file at a time with it");
    }
    let progress = (inputs.len() > 1).then(|| progress_bar(inputs.len()));
    let outcomes: Vec<(String, anyhow::Result<Submission>)> = futures::stream::iter(inputs)
        .map(|(name, payload)| {
            let spec = job_spec(&args, payload);
            let progress = progress.clone();
            let (wait, output_dir) = (args.wait, args.output_dir.as_deref());
            let retry_for = Duration::from_secs(args.retry_for_secs);
            async move {
                let result = submit_one(client, spec, retry_for, wait, output_dir).await;
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
                (name, result)
            }
        })
        .buffered(args.concurrency.max(1))
        .collect()
        .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    print_submissions(outcomes, args.json)
}

/// A bar of jobs submitted (and ended, with --wait) for a submission of many files.
fn progress_bar(jobs: usize) -> ProgressBar {
    let bar = ProgressBar::new(jobs as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} jobs {per_sec} {eta}")
            .expect("the template is valid"),
    );
    bar
}

/// The job of one document, as the arguments describe it.
fn job_spec(args: &SubmitArgs, payload: Vec<u8>) -> JobSpec {
    let mut spec = JobSpec::new(args.pool.clone(), args.handler.clone(), payload);
    spec.priority = args.priority;
    spec.metadata = JobMetadata {
        project_id: args.project_id.clone(),
        ref_type: args.ref_type.clone(),
        ref_id: args.ref_id.clone(),
    };
    spec.max_attempts = args.max_attempts;
    spec.timeout_ms = args.timeout_secs.map(|s| s.saturating_mul(1000));
    spec
}

/// Submits one job (retrying while its pool's queue is full, for at most `retry_for`);
/// with `wait`, waits for its end and writes the output of a job that succeeded to
/// `output_dir/<job id>`.
async fn submit_one(
    client: &Client,
    spec: JobSpec,
    retry_for: Duration,
    wait: bool,
    output_dir: Option<&Path>,
) -> anyhow::Result<Submission> {
    let submitted = client.submit_retrying(spec, retry_for).await?;
    let end = match wait {
        true => Some(
            client
                .wait(submitted.id, Duration::from_secs(24 * 3600))
                .await?,
        ),
        false => None,
    };
    let succeeded = end.as_ref().is_some_and(|s| s.state == JobState::Succeeded);
    if let (Some(dir), true) = (output_dir, succeeded) {
        let path = dir.join(submitted.id.to_string());
        let bytes = client.output(submitted.id).await?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Submission {
        id: submitted.id,
        deduplicated: submitted.deduplicated,
        end,
    })
}

/// One line (or JSON object) per file. Returns false if a job did not succeed; a
/// refused submission is the error when it was the only one, else counted in it.
fn print_submissions(
    outcomes: Vec<(String, anyhow::Result<Submission>)>,
    json: bool,
) -> anyhow::Result<bool> {
    let many = outcomes.len() > 1;
    let mut all_ok = true;
    let mut failures = 0usize;
    let mut last_error = None;
    for (name, outcome) in outcomes {
        match outcome {
            Ok(submission) => {
                all_ok &= submission.ended_well();
                print_submission(&name, submission, json);
            }
            Err(e) => {
                all_ok = false;
                failures += 1;
                if json {
                    println!("{}", json!({"file": name, "error": format!("{e:#}")}));
                } else if many {
                    eprintln!("{name}: {e:#}");
                }
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if !json && !many => Err(e),
        Some(_) if !json => {
            anyhow::bail!("{failures} of the submissions were refused (see above)")
        }
        _ => Ok(all_ok),
    }
}

/// The job of file `name`: its id, state (queued when not waited for), whether it
/// existed already, and the error it ended with.
fn print_submission(name: &str, submission: Submission, json: bool) {
    let Submission {
        id,
        deduplicated,
        end,
    } = submission;
    let state = end.as_ref().map_or(JobState::Queued, |s| s.state);
    let error = end.and_then(|s| s.last_error);
    if json {
        let mut line =
            json!({"id": id, "file": name, "state": state, "deduplicated": deduplicated});
        if let Some(err) = error {
            line["error"] = json!(err);
        }
        println!("{line}");
    } else {
        let note = if deduplicated { " (existing job)" } else { "" };
        let error = error.map(|e| format!(": {e}")).unwrap_or_default();
        println!("{id}  {name}  {state}{note}{error}");
    }
}

fn read_inputs(files: &[PathBuf]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if files.is_empty() {
        let mut payload = Vec::new();
        std::io::stdin()
            .read_to_end(&mut payload)
            .context("cannot read stdin")?;
        return Ok(vec![("-".into(), payload)]);
    }
    files
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok((path.display().to_string(), bytes))
        })
        .collect()
}

/// `marie status`.
pub async fn status(client: &Client, id: JobId, json: bool) -> anyhow::Result<()> {
    let status = client.status(id).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
    } else {
        print_status(&status);
    }
    Ok(())
}

fn print_status(s: &JobStatus) {
    println!("job        {}", s.id);
    println!("state      {}", s.state);
    println!("pool       {} / {}", s.pool, s.handler);
    println!("attempt    {} of {}", s.attempt, s.max_attempts);
    if let Some(executor) = &s.executor {
        println!("executor   {executor}");
    }
    if let Some(len) = s.output_len {
        println!("output     {len} bytes (marie result {})", s.id);
    }
    if let Some(err) = &s.last_error {
        println!("error      {err}");
    }
}

/// `marie wait`. Returns false if any job did not succeed.
pub async fn wait(
    client: &Client,
    ids: &[JobId],
    timeout: Duration,
    json: bool,
) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for id in ids {
        let s = client.wait(*id, timeout).await?;
        all_ok &= s.state == JobState::Succeeded;
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            let error = s.last_error.map(|e| format!(": {e}")).unwrap_or_default();
            println!("{}  {}{error}", s.id, s.state);
        }
    }
    Ok(all_ok)
}

/// `marie result`.
pub async fn result(client: &Client, id: JobId, output: Option<PathBuf>) -> anyhow::Result<()> {
    let bytes = client.output(id).await?;
    match output {
        Some(path) => std::fs::write(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

/// `marie cancel`.
pub async fn cancel(client: &Client, id: JobId) -> anyhow::Result<()> {
    let state = client.cancel(id).await?;
    println!("{id}  {state}");
    Ok(())
}

/// `marie jobs`.
pub async fn jobs(client: &Client, query: ListQuery, json: bool) -> anyhow::Result<()> {
    let page = client.list(query).await?;
    if json {
        println!("{}", serde_json::to_string(&page)?);
        return Ok(());
    }
    println!(
        "{:<36}  {:<9}  {:<16}  {:<16}  ATTEMPT",
        "ID", "STATE", "POOL", "HANDLER"
    );
    for s in &page.jobs {
        println!(
            "{:<36}  {:<9}  {:<16}  {:<16}  {}/{}",
            s.id, s.state, s.pool, s.handler, s.attempt, s.max_attempts
        );
    }
    if let Some(next) = page.next {
        println!("more: marie jobs --after {next}");
    }
    Ok(())
}

/// `marie capacity`: the seed's `{"status":"OK","result":{…}}` document.
pub async fn capacity(client: &Client) -> anyhow::Result<()> {
    let report = client.capacity().await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"status": "OK", "result": report}))?
    );
    Ok(())
}
