//! `cix-testnet`: run many cix nodes on one machine.
//!
//! Exit codes: 0 when everything the command checks held; 1 when a check failed or the command
//! could not run (the message on stderr says which); 2 for a usage error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use cix_testnet::demo::{self, Report};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

/// Many cix nodes on one machine: the guided demo, scenarios and measurements.
///
/// Logs are off unless RUST_LOG asks for them (for example RUST_LOG=cix_node=debug); they go to
/// stderr.
#[derive(Debug, Parser)]
#[command(name = "cix-testnet", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A guided tour: three city agencies in this process publish real open data, find each
    /// other's catalogues, negotiate access by ISO 37156 data spectrum and fetch verified
    /// copies.
    ///
    /// Every step is checked; the command exits 0 only if every check held. Nothing is left
    /// behind unless --keep is given.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Print one JSON report on stdout instead of the narrated tour.
    #[arg(long)]
    json: bool,
    /// Keep the agencies' node homes, published files and downloads in DIR (created if
    /// missing; must be empty).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Longest wait for any one step, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cix-testnet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Demo(args) => runtime.block_on(run_demo(args)),
    };
    // Nodes keep background tasks; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run_demo(args: DemoArgs) -> ExitCode {
    let out: Box<dyn Write + Send> = if args.json {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stdout())
    };
    let opts = demo::Options {
        keep: args.keep,
        timeout: Duration::from_secs(args.timeout),
        out,
    };
    let result = demo::run(opts).await;
    match result {
        Ok(report) => {
            if args.json {
                if let Err(e) = print_json(&report) {
                    eprintln!("cix-testnet: cannot write the report: {e:#}");
                    return ExitCode::FAILURE;
                }
            }
            verdict(&report)
        }
        Err(e) => {
            eprintln!("cix-testnet: the demo failed: {e:#}");
            if args.json {
                let value = serde_json::json!({ "ok": false, "error": format!("{e:#}") });
                let _ = print_json(&value);
            }
            ExitCode::FAILURE
        }
    }
}

/// Exit status from the report, naming every check that failed.
fn verdict(report: &Report) -> ExitCode {
    let failed: Vec<_> = report.failures().collect();
    if failed.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "cix-testnet: the demo failed: {} check(s) did not hold:",
        failed.len()
    );
    for f in failed {
        eprintln!("  step {}: {}: {}", f.step, f.name, f.detail);
    }
    ExitCode::FAILURE
}

/// Writes pretty JSON to stdout; a closed pipe counts as success.
fn print_json(value: &impl Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("cannot write to stdout")?),
    }
}
