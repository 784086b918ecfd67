//! `cix-testnet`: run many cix nodes on one machine.
//!
//! Exit codes: 0 when everything the command checks held; 1 when a check failed or the command
//! could not run (the message on stderr says which); 2 for a usage error.

use std::io::Write;
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
    /// Measure how fast revocations spread: start N nodes in this process, let random nodes
    /// sign revocations, and print, from each node's own events, the time until each node
    /// accepted each one (median, p99, max) and until every node had it.
    ///
    /// Exits 1 if any node missed any revocation.
    Revocation(RevocationArgs),
    /// Measure catch-up: build a network of N nodes whose catalogue holds the given number of
    /// signed entries, start a fresh node that dials one of them, and print how long until it
    /// holds every entry, with the bytes it received and a local baseline.
    ///
    /// Exits 1 if the joiner does not hold every entry in time.
    Join(JoinArgs),
    /// Run a scenario: a built-in one by name (propagation, partition-heal, churn,
    /// revocation-storm, hostile-peer, rights) or a TOML file, on real nodes in this process or
    /// as `cix node run` children; write report.json, report.md and SVG plots into --out.
    /// `rights` runs a person's access request through the agencies that received the data
    /// (answers, one overdue) and a complaint through appeal (ISO 37156 8.3.5, 8.3.6).
    ///
    /// Every figure comes from the nodes' own `cix::event` records. Exits 1 if a step failed
    /// or a wait timed out, 2 for a scenario file that does not validate.
    Run(RunArgs),
    /// Benchmarks on real `cix node run` processes.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The receiving end of the bench's baseline: accept one plain TCP connection on
    /// 127.0.0.1, hash it with BLAKE3 while writing it to a new file, fsync, report.
    #[command(hide = true)]
    BenchSink(SinkArgs),
    /// Process mode's hostile node: a node like `cix node run` that also takes orders to send
    /// invalid or forged entries, one JSON line each on stdin (testnet only).
    #[command(hide = true)]
    HostileNode(HostileArgs),
}

#[derive(Debug, Args)]
struct HostileArgs {
    /// The node's home, made by `cix init`.
    #[arg(long, value_name = "DIR")]
    home: PathBuf,
    /// Listen address (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// Bootstrap address (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<String>,
    /// As `cix node run --testnet-faults`: partitions and latency made by the node itself.
    #[arg(long)]
    testnet_faults: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Move one generated file of incompressible bytes from one `cix node run` process to
    /// another with `cix fetch` (encrypted, verified, fsynced on the receiver), check it
    /// byte-identical, and print MiB/s with the ratio to a plain unencrypted TCP copy through
    /// BLAKE3 between two processes, measured in the same run. Medians of --runs runs.
    ///
    /// Exits 1 if a received file differs or a step fails.
    Transfer(TransferArgs),
}

#[derive(Debug, Args)]
struct TransferArgs {
    /// Size of the generated file: bytes, or with KiB, MiB or GiB.
    #[arg(long, default_value = "1GiB", value_parser = cix_testnet::bench::parse_size)]
    size: u64,
    /// Transport to measure: tcp (TLS, the default for TCP), tcp-noise, quic, or all.
    #[arg(long, default_value = "tcp",
          value_parser = ["tcp", "tcp-noise", "quic", "all"])]
    transport: String,
    /// Repetitions of the baseline and of each transport; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
    runs: u64,
    /// The `cix` binary to run (default: the one beside this binary).
    #[arg(long, value_name = "PATH")]
    cix: Option<PathBuf>,
    /// Directory for the node homes and files (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Longest wait for a node to start or the dataset to reach the fetcher, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Print one JSON report on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SinkArgs {
    /// The file to create.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Longest pause in the stream, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// Write with direct I/O (bypassing the page cache), as a fetch does.
    #[arg(long)]
    direct: bool,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// Entries in the network's catalogue.
    #[arg(long, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    entries: u64,
    /// Nodes in the network before the joiner.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    nodes: u64,
    /// Longest wait for the joiner, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Print one JSON report on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RevocationArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=500))]
    nodes: u64,
    /// Revocations to measure.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    revocations: u64,
    /// Each node dials up to this many nodes started before it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    links: u64,
    /// Milliseconds between two revocations.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    spacing: u64,
    /// Longest wait for a revocation to reach every node, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
    /// Print one JSON report on stdout instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A built-in scenario's name, or the path of a TOML scenario file.
    #[arg(long, value_name = "NAME|FILE.toml")]
    scenario: String,
    /// Nodes (replaces the scenario's own number).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=500))]
    nodes: Option<u64>,
    /// Directory for report.json, report.md and the plots (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// in-process: real swarms in this process; process: each node a `cix node run` child
    /// (partition and latency steps as --faults says).
    #[arg(long, default_value = "in-process", value_parser = ["in-process", "process"])]
    mode: String,
    /// How partition and latency steps are made. auto: in process mode, every child in its
    /// own network namespace with `tc netem` when run as root on a kernel with netem (only
    /// routes are needed without a latency step), otherwise as filter. netns: namespaces and
    /// netem or refuse (process mode only). filter: the nodes' own testnet-only connection
    /// filter and delaying transport, which models loss as TCP retransmission delay (nothing
    /// dropped; a loss of 1 is refused); in process mode each child then runs with a hidden
    /// testnet switch and is told over its admin API. The report's `faults` says which was
    /// used.
    #[arg(long, default_value = "auto", value_parser = ["auto", "netns", "filter"])]
    faults: String,
    /// Built-ins: announcements (propagation) or revocations (revocation-storm).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    entries: Option<u64>,
    /// Built-ins: time between two announcements in propagation (default 50ms up to 60 nodes,
    /// 200ms above).
    #[arg(long, value_parser = cix_testnet::scenario::parse_duration)]
    interval: Option<Duration>,
    /// Built-ins: how long churn lasts (for example 3m, 90s).
    #[arg(long, value_parser = cix_testnet::scenario::parse_duration)]
    duration: Option<Duration>,
    /// The `cix` binary for process mode (default: the one beside this binary).
    #[arg(long, value_name = "PATH")]
    cix: Option<PathBuf>,
    /// Keep the node homes in DIR (default: a temporary directory, removed afterwards).
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Print the whole report as JSON on stdout instead of report.md.
    #[arg(long)]
    json: bool,
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
    let recorder = cix_testnet::events::global();
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
    // The bench runs processes and files only: no runtime needed.
    match cli.command {
        Command::Bench(BenchCommand::Transfer(args)) => return run_bench(args),
        Command::BenchSink(args) => {
            return match cix_testnet::bench::sink(
                &args.out,
                Duration::from_secs(args.timeout),
                args.direct,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cix-testnet: bench-sink: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let code = match cli.command {
        Command::Bench(_) | Command::BenchSink(_) => ExitCode::FAILURE,
        Command::HostileNode(args) => {
            let served = runtime.block_on(cix_testnet::hostile::serve(
                cix_testnet::hostile::ChildArgs {
                    home: args.home,
                    listen: args.listen,
                    bootstrap: args.bootstrap,
                    testnet_faults: args.testnet_faults,
                },
            ));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cix-testnet: hostile-node: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo(args) => runtime.block_on(run_demo(args)),
        Command::Run(args) => runtime.block_on(run_scenario(args, recorder)),
        Command::Revocation(args) => runtime.block_on(run_revocation(args)),
        Command::Join(args) => runtime.block_on(run_join(args)),
    };
    // Nodes keep background tasks; do not wait for them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

async fn run_scenario(args: RunArgs, recorder: cix_testnet::events::Recorder) -> ExitCode {
    use cix_testnet::{builtin, run, scenario};
    let nodes = args.nodes.map(|n| n as usize);
    if args.scenario == "rights" {
        return run_rights(&args, nodes).await;
    }
    let scenario = if let Some(s) = builtin::get(
        &args.scenario,
        builtin::Knobs {
            nodes,
            entries: args.entries.map(|n| n as usize),
            duration: args.duration,
            interval: args.interval,
        },
    ) {
        s
    } else {
        let path = PathBuf::from(&args.scenario);
        let text = match read_scenario(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("cix-testnet: {e:#}");
                return ExitCode::from(2);
            }
        };
        match scenario::parse_with(&text, nodes) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cix-testnet: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    };
    if let Err(e) = scenario.validate() {
        eprintln!("cix-testnet: {}: {e}", args.scenario);
        return ExitCode::from(2);
    }
    let mode = if args.mode == "process" {
        run::Mode::Process
    } else {
        run::Mode::InProcess
    };
    let faults: run::FaultChoice = match args.faults.parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cix-testnet: --faults: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = run::check_mode(&scenario, mode, faults) {
        eprintln!("cix-testnet: {}: {e:#}", args.scenario);
        return ExitCode::from(2);
    }
    let opts = run::Options {
        mode,
        cix: args.cix,
        work: args.work,
        faults,
    };
    // On Ctrl-C, SIGTERM or SIGHUP the run is dropped: its children are killed, its network
    // namespaces and work directory removed by their guards; cleanup_all catches any namespace
    // left over. (Children also stop by themselves if this process is killed outright:
    // `--exit-with-parent`.)
    // The handlers are installed now, before any node starts: a signal during start-up is
    // then taken when the run next yields, never the default (dying with the work directory
    // left behind).
    let stop = stop_signal();
    let outcome = tokio::select! {
        r = run::run_and_write(&scenario, &opts, recorder, args.out.as_deref()) => r,
        (name, code) = stop => {
            run::netns::cleanup_all();
            eprintln!("cix-testnet: {name}; nodes stopped and network namespaces removed");
            return ExitCode::from(code);
        }
    };
    match outcome {
        Ok(report) => {
            let shown = if args.json {
                print_json(&report)
            } else {
                println!("{}", cix_testnet::report::markdown(&report));
                Ok(())
            };
            if let Err(e) = shown {
                eprintln!("cix-testnet: cannot write the report: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("cix-testnet: the scenario did not hold: see the steps in the report");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cix-testnet: the scenario failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for a signal asking the run to stop: Ctrl-C (`SIGINT`), `SIGTERM` (`kill`,
/// `timeout`, a service manager) or `SIGHUP` (the terminal closed). Returns what to say and the
/// exit code a shell expects (128 plus the signal's number).
///
/// The handlers are installed when this is called, not when the future is first polled.
fn stop_signal() -> impl std::future::Future<Output = (&'static str, u8)> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = handlers else {
            let _ = tokio::signal::ctrl_c().await;
            return ("interrupted", 130);
        };
        tokio::select! {
            _ = int.recv() => ("interrupted", 130),
            _ = term.recv() => ("terminated (SIGTERM)", 143),
            _ = hup.recv() => ("hung up (SIGHUP)", 129),
        }
    }
}

/// The built-in `rights` scenario (ISO 37156 8.3.5, 8.3.6): `--nodes` is the number of
/// recipients plus two (the publisher and a bystander).
async fn run_rights(args: &RunArgs, nodes: Option<usize>) -> ExitCode {
    use cix_testnet::rights;
    let mut opts = rights::Options::default();
    if let Some(n) = nodes {
        if !(4..=rights::MAX_RECIPIENTS + 2).contains(&n) {
            eprintln!(
                "cix-testnet: --scenario rights takes --nodes 4 to {} (the publisher, a \
                 bystander and the recipients)",
                rights::MAX_RECIPIENTS + 2
            );
            return ExitCode::from(2);
        }
        opts.recipients = n - 2;
    }
    if args.mode != "in-process" {
        eprintln!("cix-testnet: --scenario rights runs in-process only");
        return ExitCode::from(2);
    }
    let report = match rights::run(&opts).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cix-testnet: the scenario failed: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = rights::markdown(&report);
    if let Some(dir) = &args.out {
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("report.json"),
                    serde_json::to_vec_pretty(&report).unwrap_or_default(),
                )
            })
            .and_then(|()| std::fs::write(dir.join("report.md"), &text));
        if let Err(e) = written {
            eprintln!(
                "cix-testnet: cannot write the report to {}: {e}",
                dir.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let shown = if args.json {
        print_json(&report)
    } else {
        println!("{text}");
        Ok(())
    };
    if let Err(e) = shown {
        eprintln!("cix-testnet: cannot write the report: {e:#}");
        return ExitCode::FAILURE;
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("cix-testnet: the scenario did not hold: see the report");
        ExitCode::FAILURE
    }
}

/// Reads a scenario file, refusing anything but a bounded regular file.
fn read_scenario(path: &std::path::Path) -> Result<String> {
    let known = format!("{}, rights", cix_testnet::builtin::NAMES.join(", "));
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "--scenario {}: neither a built-in scenario ({known}) nor a readable file",
            path.display()
        )
    })?;
    if !meta.is_file() {
        anyhow::bail!("--scenario {}: not a regular file", path.display());
    }
    if meta.len() > cix_testnet::scenario::MAX_SCENARIO_BYTES {
        anyhow::bail!(
            "--scenario {}: larger than {} bytes",
            path.display(),
            cix_testnet::scenario::MAX_SCENARIO_BYTES
        );
    }
    std::fs::read_to_string(path).with_context(|| {
        format!(
            "--scenario {}: cannot read it as UTF-8 text",
            path.display()
        )
    })
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

async fn run_revocation(args: RevocationArgs) -> ExitCode {
    let opts = cix_testnet::revocation::Options {
        nodes: args.nodes as usize,
        revocations: args.revocations as usize,
        links: args.links as usize,
        spacing: Duration::from_millis(args.spacing),
        timeout: Duration::from_secs(args.timeout),
    };
    match cix_testnet::revocation::run(opts).await {
        Ok(report) => {
            let shown = if args.json {
                print_json(&report)
            } else {
                println!("{}", report.text());
                Ok(())
            };
            if let Err(e) = shown {
                eprintln!("cix-testnet: cannot write the report: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "cix-testnet: {} (revocation, node) pairs never arrived",
                    report.missing
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cix-testnet: the revocation measurement failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_join(args: JoinArgs) -> ExitCode {
    let opts = cix_testnet::join::Options {
        entries: args.entries as usize,
        nodes: args.nodes as usize,
        timeout: Duration::from_secs(args.timeout),
    };
    match cix_testnet::join::run(opts).await {
        Ok(report) => {
            let shown = if args.json {
                print_json(&report)
            } else {
                println!("{}", report.text());
                Ok(())
            };
            if let Err(e) = shown {
                eprintln!("cix-testnet: cannot write the report: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "cix-testnet: the joiner lists {} of {} entries",
                    report.joiner_entries, report.entries
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cix-testnet: the join measurement failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_bench(args: TransferArgs) -> ExitCode {
    use cix_testnet::bench::{self, Transport};
    let transports = match args.transport.as_str() {
        "all" => Transport::ALL.to_vec(),
        "tcp-noise" => vec![Transport::TcpNoise],
        "quic" => vec![Transport::Quic],
        _ => vec![Transport::Tcp],
    };
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cix-testnet: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cix = args.cix.unwrap_or_else(|| me.with_file_name("cix"));
    if !cix.is_file() {
        eprintln!(
            "cix-testnet: {} not found: build it (cargo build --release --workspace) or give --cix",
            cix.display()
        );
        return ExitCode::FAILURE;
    }
    let opts = bench::Options {
        size: args.size,
        transports,
        runs: args.runs as usize,
        cix,
        sink: me,
        dir: args.dir,
        timeout: Duration::from_secs(args.timeout),
    };
    match bench::run(&opts) {
        Ok(report) => {
            let shown = if args.json {
                print_json(&report)
            } else {
                println!("{}", report.text());
                Ok(())
            };
            if let Err(e) = shown {
                eprintln!("cix-testnet: cannot write the report: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("cix-testnet: a fetched file differs from the published one");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cix-testnet: the transfer bench failed: {e:#}");
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
