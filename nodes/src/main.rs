//! `marie`: the Marie node binary and command line.

mod bench;
mod cli;
mod cluster;
mod commands;
mod config;
mod cookie;
mod logging;
mod up;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use marie_protocol::messages::ListQuery;

use crate::cli::{Cli, Command};
use crate::config::{Config, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if matches!(cli.command, Command::Up) {
        "info"
    } else {
        "warn,ractor_cluster=error"
    };
    logging::init(cli.global.log_format, level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command; `Ok(false)` means it ran but reports a failure (a job that did not
/// succeed).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let overrides = Overrides {
        data_dir: cli.global.data_dir.clone(),
    };
    let config = Config::load(cli.global.config.as_deref(), &overrides)?;
    match cli.command {
        Command::Up => up::run(config).await.map(|()| true),
        Command::Bench(args) => bench::run(&config, args).await.map(|()| true),
        Command::Submit(args) => {
            let client = commands::connect(&config, &args.connect).await?;
            commands::submit(&client, args).await
        }
        Command::Status { id, json, connect } => {
            let client = commands::connect(&config, &connect).await?;
            commands::status(&client, id, json).await.map(|()| true)
        }
        Command::Wait {
            ids,
            timeout_secs,
            json,
            connect,
        } => {
            let client = commands::connect(&config, &connect).await?;
            commands::wait(&client, &ids, Duration::from_secs(timeout_secs), json).await
        }
        Command::Result {
            id,
            output,
            connect,
        } => {
            let client = commands::connect(&config, &connect).await?;
            commands::result(&client, id, output).await.map(|()| true)
        }
        Command::Cancel { id, connect } => {
            let client = commands::connect(&config, &connect).await?;
            commands::cancel(&client, id).await.map(|()| true)
        }
        Command::Jobs {
            state,
            pool,
            limit,
            after,
            json,
            connect,
        } => {
            let client = commands::connect(&config, &connect).await?;
            let query = ListQuery {
                state,
                pool,
                limit,
                after,
            };
            commands::jobs(&client, query, json).await.map(|()| true)
        }
        Command::Capacity { connect } => {
            let client = commands::connect(&config, &connect).await?;
            commands::capacity(&client).await.map(|()| true)
        }
    }
}
