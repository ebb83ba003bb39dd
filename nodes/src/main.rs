//! `marie`: the Marie node binary and command line.

mod bench;
mod cli;
mod cluster;
mod commands;
mod config;
mod cookie;
mod http;
mod identity;
mod k8s;
mod leader;
mod logging;
mod membership;
mod node;
mod pool_handlers;
mod process_backend;
mod telemetry;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use marie_protocol::messages::ListQuery;

use crate::cli::{Cli, ClientCommand, Command};
use crate::cluster::{Role, RoleKind};
use crate::config::{Config, Overrides};
use crate::telemetry::Telemetry;

fn main() -> ExitCode {
    // Output piped into `head` and closed early ends the command quietly, as for any
    // Unix tool, instead of panicking on a broken pipe.
    // SAFETY: setting a signal's disposition to the default before any thread starts.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = Cli::parse();
    let runs_node = matches!(cli.command, Command::Up | Command::Node { .. });
    let config_path = cli
        .global
        .config
        .clone()
        .or_else(|| std::path::Path::new("cluster.toml").canonicalize().ok());
    let level = if runs_node {
        "info,ractor_cluster=error"
    } else {
        "warn,ractor_cluster=error"
    };
    logging::init(cli.global.log_format, level);
    let overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
        opens_no_store: match &cli.command {
            Command::Up | Command::Bench(_) => false,
            Command::Node { role, .. } => *role == RoleKind::Executor,
            Command::Client(_) | Command::K8s { .. } => true,
        },
    };
    let config = match Config::load(cli.global.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    // A node exports metrics and traces. The exporters start before the async runtime:
    // the OTLP exporter runs its own thread with a blocking HTTP client.
    let telemetry = match runs_node {
        true => match Telemetry::install(&config.telemetry) {
            Ok(telemetry) => Some(Arc::new(telemetry)),
            Err(e) => return fail(&e),
        },
        false => None,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(run(cli, config, telemetry.clone(), config_path));
    drop(runtime);
    if let Some(telemetry) = telemetry.and_then(|t| Arc::try_unwrap(t).ok()) {
        telemetry.shutdown();
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(&e),
    }
}

async fn run_node(
    config: Config,
    role: Role,
    telemetry: Option<Arc<Telemetry>>,
    config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    let telemetry = telemetry.ok_or_else(|| anyhow::anyhow!("telemetry is installed for nodes"))?;
    node::run(config, role, telemetry, config_path)
        .await
        .map(|()| true)
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

/// Runs one command; `Ok(false)` means it ran but reports a failure (a job that did not
/// succeed).
async fn run(
    cli: Cli,
    mut config: Config,
    telemetry: Option<Arc<Telemetry>>,
    config_path: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    match cli.command {
        Command::Up => run_node(config, Role::Up, telemetry, config_path).await,
        Command::Node {
            role,
            pool,
            executors,
        } => {
            let role = node_role(&mut config, role, pool, executors)?;
            run_node(config, role, telemetry, config_path).await
        }
        Command::Bench(args) => bench::run(&config, args).await.map(|()| true),
        Command::K8s { command } => k8s::run(command, config, config_path.as_deref()),
        Command::Client(command) => run_client(command, &config).await,
    }
}

/// The role of `marie node --role KIND [--pool NAME]`; `--executors N` sets the pool's
/// replicas in `config`.
fn node_role(
    config: &mut Config,
    kind: RoleKind,
    pool: Option<String>,
    executors: Option<u32>,
) -> anyhow::Result<Role> {
    if let (Some(n), Some(pool)) = (executors, &pool)
        && let Some(p) = config.executor.pools.iter_mut().find(|p| &p.name == pool)
    {
        p.replicas = n;
    }
    Ok(match (kind, pool) {
        (RoleKind::Server, None) => Role::Server,
        (RoleKind::Gateway, None) => Role::Gateway,
        (RoleKind::Executor, Some(pool)) => Role::Executor(pool),
        (RoleKind::Executor, None) => {
            anyhow::bail!("an executor node serves one pool: pass --pool NAME")
        }
        (_, Some(_)) => anyhow::bail!("--pool is only for --role executor"),
    })
}

/// Runs a command that talks to a running cluster through its cluster port.
async fn run_client(command: ClientCommand, config: &Config) -> anyhow::Result<bool> {
    match command {
        ClientCommand::Submit(args) => {
            let client = commands::connect(config, &args.connect).await?;
            commands::submit(&client, args).await
        }
        ClientCommand::Status { id, json, connect } => {
            let client = commands::connect(config, &connect).await?;
            commands::status(&client, id, json).await.map(|()| true)
        }
        ClientCommand::Wait {
            ids,
            timeout_secs,
            json,
            connect,
        } => {
            let client = commands::connect(config, &connect).await?;
            commands::wait(&client, &ids, Duration::from_secs(timeout_secs), json).await
        }
        ClientCommand::Result {
            id,
            output,
            connect,
        } => {
            let client = commands::connect(config, &connect).await?;
            commands::result(&client, id, output).await.map(|()| true)
        }
        ClientCommand::Cancel { id, connect } => {
            let client = commands::connect(config, &connect).await?;
            commands::cancel(&client, id).await.map(|()| true)
        }
        ClientCommand::Jobs {
            state,
            pool,
            limit,
            after,
            json,
            connect,
        } => {
            let client = commands::connect(config, &connect).await?;
            let query = ListQuery {
                state,
                pool,
                limit,
                after,
            };
            commands::jobs(&client, query, json).await.map(|()| true)
        }
        ClientCommand::Capacity { connect } => {
            let client = commands::connect(config, &connect).await?;
            commands::capacity(&client).await.map(|()| true)
        }
    }
}
