//! `marie bench`: no-op jobs through an embedded cluster, with the SQLite store, in
//! memory and (given a database) with the Postgres store, next to a raw local ractor
//! call measured in the same run.
//!
//! Closed loop (default): `--in-flight` workers each submit a job and wait for its end,
//! then take the next. Open loop (`--rate`): jobs start on a fixed schedule and latency
//! counts from the scheduled start, so a stall shows up in the tail.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use marie_client::Client;
use marie_protocol::{JobSpec, JobState};
use marie_store::postgres::redact;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::sync::Mutex;

use crate::cluster::{NodeActors, NodeContext, Role};
use crate::config::{Config, PoolConfig, StoreBackend};

/// `marie bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measure a running cluster through this node's cluster port instead of an
    /// embedded one (the baseline is then a raw remote call to its Gateway).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// With --connect: the pool whose `echo` handler the jobs use.
    #[arg(long, default_value = "bench")]
    pub pool: String,
    /// Jobs per case.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: u64,
    /// Jobs in flight at once (closed loop).
    #[arg(long, default_value_t = 64)]
    pub in_flight: u64,
    /// Start jobs at this many per second instead (open loop).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Which stores to measure.
    #[arg(long, value_enum, default_value_t = BenchStores::Both)]
    pub store: BenchStores,
    /// The Postgres database of `--store postgres` and `--store all` (else `store.url`,
    /// `MARIE_STORE__URL`). The benchmark takes the leader's lease and leaves its jobs
    /// there: give it a database of its own.
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
    /// Executors in the benchmark pool.
    #[arg(long, default_value_t = 2)]
    pub executors: u32,
    /// Measure the submit alone (answered once the job is durable), not submit and
    /// wait for the end: the actor-RPC figure to compare with `POST /api/jobs`.
    #[arg(long)]
    pub submit_only: bool,
    /// Bytes of each job's payload (1024 matches the HTTP benchmark's bodies).
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
}

/// The stores `marie bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchStores {
    /// SQLite on disk (durable).
    Sqlite,
    /// Memory only.
    Memory,
    /// SQLite and memory, one after the other.
    Both,
    /// Postgres (durable): `--store-url`.
    Postgres,
    /// Memory, SQLite and Postgres, one after the other.
    All,
}

/// One measured case.
struct Measured {
    name: String,
    per_second: f64,
    latency_us: Histogram<u64>,
    /// CPU time of the whole process (user + system) per job, where the OS tells it.
    cpu_us_per_job: Option<f64>,
}

/// Runs the benchmark and prints the table.
pub async fn run(base: &Config, args: BenchArgs) -> anyhow::Result<()> {
    if let Some(addr) = args.connect.clone() {
        return across_nodes(base, &args, &addr).await;
    }
    let stores = match args.store {
        BenchStores::Sqlite => vec![StoreBackend::Sqlite],
        BenchStores::Memory => vec![StoreBackend::Memory],
        BenchStores::Both => vec![StoreBackend::Memory, StoreBackend::Sqlite],
        BenchStores::Postgres => vec![StoreBackend::Postgres],
        BenchStores::All => vec![
            StoreBackend::Memory,
            StoreBackend::Sqlite,
            StoreBackend::Postgres,
        ],
    };
    let mut base = base.clone();
    if let Some(url) = &args.store_url {
        base.store.url = Some(url.clone());
    }
    let postgres_url = match &base.store.url {
        Some(url) => Some(url.as_str()),
        None if stores.contains(&StoreBackend::Postgres) => anyhow::bail!(
            "the Postgres store needs a database: give --store-url (or store.url, \
             MARIE_STORE__URL)"
        ),
        None => None,
    };
    let mut results = vec![raw_call(&args).await?];
    for &backend in &stores {
        results.push(through_marie(&base, &args, backend).await?);
    }
    print_table(&args, &results);
    if let Some(url) = postgres_url.filter(|_| stores.contains(&StoreBackend::Postgres)) {
        println!("postgres store: {}", redact(url));
    }
    Ok(())
}

fn print_table(args: &BenchArgs, results: &[Measured]) {
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate} jobs/s"),
        None => format!("{} in flight", args.in_flight),
    };
    println!("\n{} jobs per case, {mode}", args.jobs);
    println!(
        "{:<28} {:>12} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "case", "per second", "p50 µs", "p99 µs", "max µs", "CPU µs/job", "p50 / raw"
    );
    let raw_p50 = results[0].latency_us.value_at_quantile(0.5).max(1) as f64;
    for r in results {
        let h = &r.latency_us;
        let cpu = r
            .cpu_us_per_job
            .map_or_else(|| "-".to_owned(), |us| format!("{us:.1}"));
        println!(
            "{:<28} {:>12.0} {:>10} {:>10} {:>10} {:>12} {:>11.1}x",
            r.name,
            r.per_second,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max(),
            cpu,
            h.value_at_quantile(0.5) as f64 / raw_p50
        );
    }
}

async fn through_marie(
    base: &Config,
    args: &BenchArgs,
    backend: StoreBackend,
) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir().context("cannot create a temporary data dir")?;
    let mut config = base.clone();
    config.node.name = "bench".into();
    config.node.data_dir = dir.path().to_path_buf();
    config.store.backend = backend;
    config.executor.pools = vec![PoolConfig {
        name: "bench".into(),
        replicas: args.executors.max(1),
        slots: args.in_flight.max(1) as u32,
        handlers: vec!["echo".into()],
        max_queued: u64::MAX,
        ..PoolConfig::default()
    }];
    let cluster = NodeActors::start(&config, &Role::Up, &NodeContext::default()).await?;
    // Give executors a moment to register before the clock starts.
    let client = wait_for_slots(&config).await?;
    let name = match (backend, args.submit_only) {
        (StoreBackend::Sqlite, false) => "marie, sqlite store (durable)",
        (StoreBackend::Memory, false) => "marie, memory store",
        (StoreBackend::Sqlite, true) => "submit only, sqlite store",
        (StoreBackend::Memory, true) => "submit only, memory store",
        (StoreBackend::Postgres, false) => "marie, postgres store (durable)",
        (StoreBackend::Postgres, true) => "submit only, postgres store",
    };
    let job = echo_job("bench".into(), args);
    let measured = drive(name, args, client, job).await;
    cluster.shutdown(Duration::from_secs(10)).await;
    measured
}

async fn wait_for_slots(config: &Config) -> anyhow::Result<Client> {
    let wanted: u64 = config.pool_setups().iter().map(|p| p.target_slots).sum();
    // With Postgres, the lease of a cluster that ended without releasing it must expire
    // first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let client = Client::local()?;
        // Not ready yet (with Postgres: until the node holds the lease) is waited out.
        let capacity = client.capacity().await.map(|c| c.totals.capacity);
        if capacity.as_ref().is_ok_and(|&slots| slots >= wanted) {
            return Ok(client);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "executors did not register within 30 s (with Postgres: does another node \
             hold the leader's lease on that database?): {}",
            capacity.map_or_else(|e| e.to_string(), |slots| format!("{slots} slots"))
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drives `jobs` calls of `one` with the closed- or open-loop schedule.
async fn drive<C, F, Fut>(
    name: &str,
    args: &BenchArgs,
    context: C,
    one: F,
) -> anyhow::Result<Measured>
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3).context("histogram")?));
    let bar = ProgressBar::new(args.jobs).with_message(name.to_owned());
    bar.set_style(
        ProgressStyle::with_template("{msg:<28} {bar:30} {pos}/{len} {per_sec}")
            .expect("valid template"),
    );
    let next = Arc::new(AtomicU64::new(0));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    match args.rate {
        None => {
            for _ in 0..args.in_flight.max(1) {
                let (next, histogram, bar, one, context, total) = (
                    next.clone(),
                    histogram.clone(),
                    bar.clone(),
                    one.clone(),
                    context.clone(),
                    args.jobs,
                );
                tasks.spawn(async move {
                    let mut local = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let t = Instant::now();
                        one(context.clone()).await?;
                        local.push(t.elapsed().as_micros() as u64);
                        bar.inc(1);
                    }
                    let mut h = histogram.lock().await;
                    for v in local {
                        h.record(v.max(1))?;
                    }
                    anyhow::Ok(())
                });
            }
        }
        Some(rate) => {
            let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
            for i in 0..args.jobs {
                let due = started + period.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let (histogram, bar, one, context) =
                    (histogram.clone(), bar.clone(), one.clone(), context.clone());
                tasks.spawn(async move {
                    one(context).await?;
                    histogram
                        .lock()
                        .await
                        .record((due.elapsed().as_micros() as u64).max(1))?;
                    bar.inc(1);
                    anyhow::Ok(())
                });
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a benchmark task panicked")??;
    }
    let elapsed = started.elapsed();
    let cpu_us_per_job = match (cpu_before, process_cpu()) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before).as_secs_f64() * 1e6 / args.jobs.max(1) as f64)
        }
        _ => None,
    };
    bar.finish_and_clear();
    let latency_us = Arc::try_unwrap(histogram)
        .map_err(|_| anyhow::anyhow!("histogram still shared"))?
        .into_inner();
    Ok(Measured {
        name: name.to_owned(),
        per_second: args.jobs as f64 / elapsed.as_secs_f64(),
        latency_us,
        cpu_us_per_job,
    })
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`
/// (Linux); `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, maybe with spaces) come the fields from
    // the third on: utime and stime are the 14th and 15th, in 1/100 s.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The baseline: a local actor answering a call.
struct Pong;

#[derive(RactorMessage)]
struct Ping(RpcReplyPort<()>);

impl Actor for Pong {
    type Msg = Ping;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Ping>,
        Ping(reply): Ping,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(());
        Ok(())
    }
}

/// One benchmark job: an `echo` of `--payload-bytes` to `pool`, submitted and (unless
/// `--submit-only`) waited for.
fn echo_job(
    pool: String,
    args: &BenchArgs,
) -> impl Fn(Client) -> futures::future::BoxFuture<'static, anyhow::Result<()>>
+ Clone
+ Send
+ Sync
+ 'static {
    let (payload, submit_only) = (vec![0u8; args.payload_bytes], args.submit_only);
    move |client: Client| {
        let (pool, payload) = (pool.clone(), payload.clone());
        Box::pin(async move {
            let submitted = client.submit(JobSpec::new(pool, "echo", payload)).await?;
            if submit_only {
                return Ok(());
            }
            let status = client.wait(submitted.id, Duration::from_secs(60)).await?;
            anyhow::ensure!(
                status.state == JobState::Succeeded,
                "job {} ended {}",
                status.id,
                status.state
            );
            Ok(())
        })
    }
}

/// Jobs through a running cluster, next to a raw remote call to the same Gateway.
async fn across_nodes(config: &Config, args: &BenchArgs, addr: &str) -> anyhow::Result<()> {
    let cookie = crate::cookie::for_client(config, None)?;
    let client = Client::connect_with(
        addr,
        &cookie,
        config.cluster.tls.as_ref(),
        Duration::from_secs(5),
    )
    .await?;
    let ping = |client: Client| async move { Ok(client.ping().await?) };
    let mut results = vec![drive("raw remote call (ping)", args, client.clone(), ping).await?];
    let job = echo_job(args.pool.clone(), args);
    let name = if args.submit_only {
        "marie submit, across nodes"
    } else {
        "marie job, across nodes"
    };
    results.push(drive(name, args, client, job).await?);
    print_table(args, &results);
    Ok(())
}

async fn raw_call(args: &BenchArgs) -> anyhow::Result<Measured> {
    let (pong, done) = Actor::spawn(None, Pong, ())
        .await
        .context("baseline actor")?;
    let call = |pong: ActorRef<Ping>| async move {
        pong.call(Ping, Some(Duration::from_secs(5)))
            .await?
            .success_or(anyhow::anyhow!("the baseline actor did not answer"))
    };
    let measured = drive("raw local ractor call", args, pong.clone(), call).await;
    pong.stop(None);
    let _ = done.await;
    measured
}
