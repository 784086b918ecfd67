//! `cix`: run and steer a node of the city infrastructure exchange.
//!
//! `cix init` and `cix node run` work on the node's home directly, and `cix token inspect|verify`
//! on token files alone; every other command talks to the running node's admin API (loopback
//! only, token in `HOME/admin.token`).
//!
//! Exit codes: 0 success, 1 the operation failed (the message on stderr says why), 2 the command
//! line was wrong. A closed stdout (`cix catalogue list | head`) counts as success.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use cix_node::{Config, Home};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

mod audit;
mod client;
mod dictionary;
mod emergency;
mod interchange;
mod ops;
mod output;
mod quality;
mod receipts;
mod reident;
mod rights;
mod token;
mod users;

use client::Client;
use output::Out;

/// cix: publish, find and share city infrastructure data between agencies (ISO 37156).
#[derive(Debug, Parser)]
#[command(name = "cix", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// The node's data directory (key, config, store). Several nodes on one machine each need
    /// their own.
    #[arg(long, global = true, env = "CIX_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Print JSON Lines (one object per line) instead of tables and prose.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: its key, config and admin token.
    Init(InitArgs),
    /// Run the node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Summarise the running node: identity, peers, catalogue, requests, gossip, transfers,
    /// revocations, audit log, store size (what `GET /metrics` exports, for a person).
    Status,
    /// Print the running node's Prometheus metrics, as `GET /metrics` on the admin listener
    /// serves them (OpenMetrics text), without an HTTP client; `cix-testnet` reads each
    /// child's traffic counters this way.
    Metrics,
    /// List connected peers: agency, jurisdiction, connection state (connected, relayed),
    /// latency, gossip score, datasets published, addresses.
    Peers {
        /// Also list configured bootstrap peers that are not connected (state disconnected).
        #[arg(long)]
        all: bool,
    },
    /// One peer in detail.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Check this node's setup and say what is wrong and how to fix it: key permissions,
    /// config, listen addresses, bootstrap peers, clock skew against peers, disk space, store
    /// integrity. Exits with status 1 when a check fails.
    Doctor,
    /// The node's configuration.
    #[command(subcommand)]
    Config(ops::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `cix man > /usr/share/man/man1/cix.1`.
    Man,
    /// Connect to a peer by address (with /p2p/PEERID).
    Dial {
        /// The peer's multiaddr, as its `cix node run` printed it.
        addr: String,
    },
    /// Publish a file as a dataset and print its dataset id.
    Publish(PublishArgs),
    /// Inspect the catalogue: this node's datasets and those its peers announced.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// A dataset's data dictionary (ISO 37156 5.4): show it, or export it as a Frictionless
    /// Table Schema.
    #[command(subcommand)]
    Dictionary(dictionary::DictionaryCommand),
    /// Search the catalogue (this node's datasets and its peers'): words in titles, keywords
    /// and descriptions, ISO 37156 facets, a bounding box, a time range; ranked best first.
    Search(SearchArgs),
    /// Ask a dataset's owner for access.
    Request(RequestArgs),
    /// The access requests queue (requests for this node's data, and this node's own).
    #[command(subcommand)]
    Requests(RequestsCommand),
    /// Fetch a dataset from its owner and other custodians at once, every 16 KiB verified
    /// against its BLAKE3 content id as it arrives; an interrupted fetch resumes where it
    /// stopped when run again.
    Fetch(FetchArgs),
    /// List running and interrupted transfers (dataset, content, bytes verified / total,
    /// sources, state, started).
    Transfers,
    /// Offline UCAN token tools: inspect one token, verify an invocation with its chain.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Delegate one of this node's datasets to another agency directly, without a request.
    Grant(token::GrantArgs),
    /// Pass a delegation this node received on to another agency, attenuated.
    Delegate(token::DelegateArgs),
    /// Delegations this node issued and received.
    #[command(subcommand)]
    Tokens(token::TokensCommand),
    /// Revoke a delegation this node issued: every chain through it is refused from now on,
    /// on every node the revocation reaches (it is gossiped and kept forever).
    Revoke(token::RevokeArgs),
    /// Revocations this node knows: its own and those its peers passed on.
    Revocations,
    /// As a registrar, attest that an agency belongs to a group (for shared-group data, ISO
    /// 37156 5.5.3); owners that trust this node accept it with `cix request --attestation`.
    Attest(AttestArgs),
    /// The tamper-evident audit log (ISO 37156 8.3.4): list it, export it, verify it (also
    /// against the heads peers witnessed).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Signed delivery receipts (ISO 37156 8.3.4): list, show, verify; deletion notices and
    /// data held under a retention period (8.2.2 e).
    #[command(subcommand)]
    Receipts(receipts::ReceiptsCommand),
    /// The agency's privacy notice (ISO 37156 8.3.3): show one's own or a peer's, or set it.
    #[command(subcommand)]
    Privacy(receipts::PrivacyCommand),
    /// Quality feedback (ISO 37156 9.2 e, 9.3): report a problem to a dataset's publisher,
    /// list and answer reports, show a dataset's quality measures.
    #[command(subcommand)]
    Quality(quality::QualityCommand),
    /// Emergency access (ISO 37156 6.7): agreements made in advance, declared emergencies that
    /// open them for a bounded time, early ends, and the mandatory review of every use.
    #[command(subcommand)]
    Emergency(emergency::EmergencyCommand),
    /// The registrars this agency trusts for group access (ISO 37156 5.5.3); a change applies
    /// at once and re-checks live grants (8.2.5).
    #[command(subcommand)]
    Registrars(emergency::RegistrarsCommand),
    /// Individuals' requests (ISO 37156 8.3.5): record a person's access, rectification,
    /// erasure, objection or automated-review request, forward it to every agency that
    /// received the data, track answers and deadlines; answer requests forwarded here.
    #[command(subcommand)]
    Rights(rights::RightsCommand),
    /// Complaints (ISO 37156 8.3.6): record, forward, answer, appeal and decide.
    #[command(subcommand)]
    Complaints(rights::ComplaintsCommand),
    /// Accounts of the web console (`/console` on the admin listener): add (password from
    /// standard input or a prompt), list, remove.
    #[command(subcommand)]
    Users(users::UsersCommand),
}

#[derive(Debug, Subcommand)]
enum PeerCommand {
    /// Everything known of one peer: identity, agency, state, connections, latency, gossip
    /// score, protocols, datasets it publishes.
    Show {
        /// PeerId (or a unique prefix), or did:key.
        id: String,
    },
}

#[derive(Debug, Args)]
struct AttestArgs {
    /// The member agency, as did:key:z6Mk….
    #[arg(long, value_name = "DID")]
    to: String,
    /// The group's name (a-z, 0-9, '-', '_', '.', '/'; at most 64 bytes).
    #[arg(long, value_name = "NAME")]
    group: String,
    /// Days the attestation holds (default: the node's grant_days; at most 366).
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// Write the signed attestation (raw CBOR) to FILE for the member.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The agency's name, shown to peers.
    #[arg(long)]
    name: String,
    /// The agency's jurisdiction, ISO 3166-1 alpha-2 (NL, US, ...).
    #[arg(long, default_value = "US", value_name = "CC")]
    jurisdiction: String,
    /// Infrastructure sectors the agency runs (energy, water, transport, waste, ict).
    #[arg(long = "sector", value_name = "SECTOR")]
    sectors: Vec<String>,
    /// Default libp2p listen address (may be repeated).
    #[arg(long, value_name = "MULTIADDR")]
    listen: Vec<String>,
    /// The agency's privacy notice (ISO 37156 8.3.3), a TOML file with controller, purposes,
    /// third_parties, rights, cross_border, contact and optionally url; needed before
    /// publishing personal data.
    #[arg(long, value_name = "FILE")]
    privacy: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Run the node in the foreground until interrupted (Ctrl-C or SIGTERM).
    Run {
        /// Listen address for this run, replacing the config's (may be repeated).
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Peer to connect to at start, with /p2p/PEERID (may be repeated).
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
        /// TESTNET ONLY, hidden, never for a real agency: `cix-testnet` passes it to make
        /// partitions and latency inside this process (the delaying transport, TCP only, and
        /// the admin endpoints PUT /v1/testnet/blocked and /v1/testnet/delays, loopback only).
        #[arg(long, hide = true)]
        testnet_faults: bool,
        /// TESTNET ONLY, hidden: stop when the process PID (the `cix-testnet` that started
        /// this node) ends, however it ends, so that no node outlives its testnet.
        #[arg(long, hide = true, value_name = "PID")]
        exit_with_parent: Option<u32>,
    },
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The file to publish.
    file: PathBuf,
    /// Title of the dataset.
    #[arg(long)]
    title: Option<String>,
    /// ISO 37156 5.5 data spectrum.
    #[arg(long, value_parser = ["open", "shared-public", "shared-group", "shared-named", "closed"])]
    spectrum: Option<String>,
    /// Metadata file (TOML) with everything else: description, ISO 37156 classification,
    /// coverage, privacy, dictionary overrides.
    #[arg(long, value_name = "FILE.toml")]
    meta: Option<PathBuf>,
    /// Publish a CSV even though rows break its data dictionary (wrong type, missing required
    /// value, out of range, not an allowed value, wrong number of columns); the entry's
    /// quality statement then says how many rows and which rule, so receivers see it.
    #[arg(long)]
    accept_invalid: bool,
    /// Publish a new version of this node's dataset ID (or unique prefix) instead of a new
    /// dataset: it supersedes the older versions in every listing.
    #[arg(long, value_name = "ID")]
    dataset: Option<String>,
    /// With --dataset: quality reports (ids or unique prefixes) this corrected version
    /// resolves (ISO 37156 9.2 e); the entry names them and each reporter is told.
    #[arg(long, value_name = "REPORT", requires = "dataset")]
    resolves: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum CatalogueCommand {
    /// One line per dataset.
    List,
    /// The whole entry of one dataset.
    Show {
        /// Dataset id, or a unique prefix of it.
        id: String,
    },
    /// Import a catalogue file: each record becomes a draft whose ISO 37156 block a mapping
    /// file (or an edited drafts file) confirms; then the node signs and announces them.
    /// Exits with status 1 when any record is refused.
    Import(interchange::ImportArgs),
    /// Export this node's own non-closed datasets (latest versions) as DCAT-AP or data.json.
    Export(interchange::ExportArgs),
    /// Every version of a dataset this node knows (entry id, version, content hash, modified
    /// time) and every withdrawal of it, withdrawn datasets included (ISO 37156 4.2 g).
    History {
        /// Dataset id, or a unique prefix of it.
        id: String,
    },
    /// Withdraw one of this node's datasets: a signed withdrawal, gossiped and kept for good,
    /// removes it from every node's listings, and this node stops serving it. Publishing a
    /// new version (`cix publish FILE --dataset ID`) lists it again.
    Withdraw {
        /// Dataset id, or a unique prefix of it.
        id: String,
        /// Why; the operators of other nodes see it.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

/// `cix search`: every flag may be repeated; values of one flag are alternatives, different
/// flags must all hold.
#[derive(Debug, Args)]
struct SearchArgs {
    /// Words to find in titles, keywords and descriptions; every word must match (words of 3
    /// letters or more also match as the start of a longer word).
    #[arg(value_name = "WORDS")]
    words: Vec<String>,
    /// Infrastructure domain: energy, water, transport, waste, ict.
    #[arg(long, value_name = "DOMAIN", value_parser = checked::<cix_protocol::catalogue::Domain>)]
    domain: Vec<String>,
    /// SCCM kind of collected data (ISO 37156 5.3): characteristic, consumption, movement,
    /// presence, production, status, supply, usage.
    #[arg(long, value_name = "KIND", value_parser = checked::<cix_protocol::catalogue::Kind>)]
    kind: Vec<String>,
    /// Data type (ISO 37156 5.2): metadata, reference, thematic.
    #[arg(long, value_name = "TYPE", value_parser = checked::<cix_protocol::catalogue::DataType>)]
    data_type: Vec<String>,
    /// Data spectrum (ISO 37156 5.5): open, shared-public, shared-group, shared-named, closed.
    #[arg(long, value_name = "LEVEL", value_parser = checked::<cix_protocol::catalogue::Level>)]
    spectrum: Vec<String>,
    /// Publisher: its name (any case) or its did:key.
    #[arg(long, value_name = "NAME|DID", value_parser = facet_text)]
    publisher: Vec<String>,
    /// Insight level (ISO 37156 5.3): operational, critical, analytical, strategic.
    #[arg(long, value_name = "LEVEL", value_parser = checked::<cix_protocol::catalogue::Insight>)]
    insight: Vec<String>,
    /// Licence, as the entry states it (any case), e.g. CC-BY-4.0.
    #[arg(long, value_name = "LICENCE", value_parser = facet_text)]
    licence: Vec<String>,
    /// Only entries whose spatial coverage intersects this box, in degrees; west > east crosses
    /// the antimeridian.
    #[arg(long, value_name = "W,S,E,N", allow_hyphen_values = true, value_parser = bbox_arg)]
    bbox: Option<String>,
    /// Only entries whose temporal coverage reaches this date or time (RFC 3339) or later.
    #[arg(long, value_name = "DATE", value_parser = from_arg)]
    from: Option<String>,
    /// Only entries whose temporal coverage starts on or before this date or time (RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = to_arg)]
    to: Option<String>,
    /// Most results to show (the facet counts cover every match).
    #[arg(long, value_name = "N", default_value_t = cix_node::search::DEFAULT_LIMIT as u64,
          value_parser = clap::value_parser!(u64).range(1..=cix_node::search::MAX_LIMIT as u64))]
    limit: u64,
}

/// A value clap checks with the type's own parser, passed on as typed.
fn checked<T: std::str::FromStr<Err = String>>(s: &str) -> Result<String, String> {
    s.parse::<T>().map(|_| s.to_string())
}

fn facet_text(s: &str) -> Result<String, String> {
    let max = cix_node::search::MAX_FACET_VALUE_BYTES;
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > max {
        return Err(format!("at most {max} bytes"));
    }
    Ok(s.to_string())
}

fn bbox_arg(s: &str) -> Result<String, String> {
    cix_node::search::parse_bbox(s).map(|_| s.to_string())
}

fn from_arg(s: &str) -> Result<String, String> {
    cix_node::search::parse_time(s, false).map(|_| s.to_string())
}

fn to_arg(s: &str) -> Result<String, String> {
    cix_node::search::parse_time(s, true).map(|_| s.to_string())
}

#[derive(Debug, Args)]
struct RequestArgs {
    /// Dataset id, or a unique prefix of it.
    id: String,
    /// What the data will be used for (recorded by the owner, ISO 37156 8.3.4).
    #[arg(long)]
    purpose: String,
    /// Accept the dataset's stated terms (shared-public data); the grant binds their hash.
    #[arg(long)]
    accept_terms: bool,
    /// A registrar's membership attestation (from `cix attest --out`) for shared-group data;
    /// may be repeated (at most 8).
    #[arg(long = "attestation", value_name = "FILE")]
    attestations: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum RequestsCommand {
    /// Every request: incoming (for this node's data) and outgoing.
    List,
    /// Approve a pending request: the requester gets a grant for that dataset.
    Approve {
        /// Request id (or a unique prefix).
        req: String,
    },
    /// Deny a pending request.
    Deny {
        /// Request id (or a unique prefix).
        req: String,
        /// Why; the requester sees it.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Dataset id, or a unique prefix of it.
    id: String,
    /// Where to write the file; it appears only once fully verified.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: PathBuf,
    /// Fetch from this peer (PeerId, whole or shortened as `cix peers` shows it, or did:key)
    /// instead of the owner and the custodians found;
    /// repeat it to fetch from several at once. Open data may come from any node that holds
    /// it; shared data only from its owner.
    #[arg(long = "from", value_name = "PEER")]
    from: Vec<String>,
}

fn main() {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => {}
        Err(e) if output::is_broken_pipe(&e) => {}
        Err(e) => {
            if json {
                let _ = writeln!(
                    std::io::stderr(),
                    "{}",
                    json!({ "error": format!("{e:#}") })
                );
            } else {
                let text = format!("cix: error: {e:#}");
                let _ = writeln!(std::io::stderr(), "{}", output::printable(&text));
            }
            std::process::exit(1);
        }
    }
}

fn home_of(cli_home: Option<PathBuf>) -> Result<Home> {
    if let Some(h) = cli_home {
        return Ok(Home::new(h));
    }
    match std::env::var_os("HOME") {
        Some(h) => Ok(Home::new(PathBuf::from(h).join(".cix"))),
        None => bail!("no --home given and $HOME is not set"),
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut out = Out::new(cli.json);
    // The offline token tools need no home.
    let command = match cli.command {
        Command::Token(cmd) => return token::token(cmd, &mut out),
        // A receipt file verifies without a node (ISO 37156 8.3.4).
        Command::Receipts(receipts::ReceiptsCommand::Verify { id_or_file })
            if Path::new(&id_or_file).is_file() =>
        {
            return receipts::verify_file(Path::new(&id_or_file), &mut out)
        }
        other => other,
    };
    let home = home_of(cli.home)?;
    match command {
        Command::Init(args) => init(&home, args, &mut out),
        Command::Node(NodeCommand::Run {
            listen,
            bootstrap,
            testnet_faults,
            exit_with_parent,
        }) => {
            if let Some(parent) = exit_with_parent {
                cix_node::testnet_faults::exit_with_parent(parent)
                    .map_err(|why| anyhow::anyhow!("--exit-with-parent: {why}"))?;
            }
            node_run(home, listen, bootstrap, testnet_faults)
        }
        Command::Metrics => {
            let text = Client::connect(&home)?.get_text("/metrics", 16 * 1024 * 1024)?;
            print!("{text}");
            Ok(())
        }
        Command::Status => {
            let v: Value = Client::connect(&home)?.get("/v1/status")?;
            out.status(&v)
        }
        Command::Peers { all } => ops::peers(&home, all, &mut out),
        Command::Peer(PeerCommand::Show { id }) => ops::peer_show(&home, &id, &mut out),
        Command::Doctor => ops::doctor(&home, &mut out),
        Command::Config(cmd) => ops::config(&home, cmd, &mut out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "cix", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Dial { addr } => {
            let v: Value = Client::connect(&home)?.post("/v1/dial", &json!({ "addr": addr }))?;
            out.message(&v, &format!("dialing {addr}"))
        }
        Command::Publish(args) => publish(&home, args, &mut out),
        Command::Catalogue(CatalogueCommand::List) => {
            let v: Vec<Value> = Client::connect(&home)?.get("/v1/catalogue")?;
            out.catalogue(&v)
        }
        Command::Catalogue(CatalogueCommand::Import(args)) => {
            interchange::import(&home, args, &mut out)
        }
        Command::Catalogue(CatalogueCommand::Export(args)) => {
            interchange::export(&home, args, &mut out)
        }
        Command::Catalogue(CatalogueCommand::Show { id }) => {
            let v: Value =
                Client::connect(&home)?.get(&format!("/v1/catalogue/{}", url_safe(&id)?))?;
            out.entry(&v)
        }
        Command::Catalogue(CatalogueCommand::History { id }) => {
            let v: Value = Client::connect(&home)?
                .get(&format!("/v1/catalogue/{}/history", url_safe(&id)?))?;
            out.history(&v)
        }
        Command::Catalogue(CatalogueCommand::Withdraw { id, reason }) => {
            let v: Value = Client::connect(&home)?
                .post("/v1/withdraw", &json!({ "dataset": id, "reason": reason }))?;
            out.withdrawn(&v)
        }
        Command::Search(args) => search(&home, args, &mut out),
        Command::Request(args) => {
            let attestations = args
                .attestations
                .iter()
                .map(|p| read_attestation(p).map(hex::encode))
                .collect::<Result<Vec<_>>>()?;
            let v: Value = Client::connect(&home)?.post(
                "/v1/request",
                &json!({ "dataset": args.id, "purpose": args.purpose,
                         "accept_terms": args.accept_terms, "attestations": attestations }),
            )?;
            out.request_outcome(&v)
        }
        Command::Dictionary(cmd) => dictionary::dictionary(&home, cmd, &mut out),
        Command::Attest(args) => attest(&home, args, &mut out),
        Command::Requests(cmd) => requests(&home, cmd, &mut out),
        Command::Fetch(args) => fetch(&home, args, &mut out),
        Command::Transfers => {
            let v: Vec<Value> = Client::connect(&home)?.get("/v1/transfers")?;
            out.transfers(&v)
        }
        Command::Token(cmd) => token::token(cmd, &mut out),
        Command::Grant(args) => token::grant(&home, args, &mut out),
        Command::Delegate(args) => token::delegate(&home, args, &mut out),
        Command::Tokens(cmd) => token::tokens(&home, cmd, &mut out),
        Command::Revoke(args) => token::revoke(&home, args, &mut out),
        Command::Revocations => token::revocations(&home, &mut out),
        Command::Audit(cmd) => audit::audit(&home, cmd, &mut out),
        Command::Receipts(cmd) => receipts::receipts(&home, cmd, &mut out),
        Command::Privacy(cmd) => receipts::privacy(&home, cmd, &mut out),
        Command::Quality(cmd) => quality::quality(&home, cmd, &mut out),
        Command::Emergency(cmd) => emergency::emergency(&home, cmd, &mut out),
        Command::Registrars(cmd) => emergency::registrars(&home, cmd, &mut out),
        Command::Rights(cmd) => rights::rights(&home, cmd, &mut out),
        Command::Complaints(cmd) => rights::complaints(&home, cmd, &mut out),
        Command::Users(cmd) => users::users(&home, cmd, &mut out),
    }
}

/// Exits with a usage error (code 2), as clap does for a bad flag.
fn usage_error(message: &str) -> ! {
    use clap::CommandFactory;
    Cli::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn search(home: &Home, args: SearchArgs, out: &mut Out) -> Result<()> {
    use cix_node::search;
    let text = args.words.join(" ");
    if text.len() > search::MAX_QUERY_BYTES {
        usage_error(&format!(
            "the search words are over {} bytes",
            search::MAX_QUERY_BYTES
        ));
    }
    if search::words(&text).count() > search::MAX_QUERY_WORDS {
        usage_error(&format!("at most {} search words", search::MAX_QUERY_WORDS));
    }
    if let (Some(f), Some(t)) = (&args.from, &args.to) {
        if search::parse_time(f, false).ok() > search::parse_time(t, true).ok() {
            usage_error(&format!("--from {f} is after --to {t}"));
        }
    }
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if !text.trim().is_empty() {
        pairs.push(("q", text));
    }
    for (name, values) in [
        ("domain", args.domain),
        ("kind", args.kind),
        ("data_type", args.data_type),
        ("spectrum", args.spectrum),
        ("publisher", args.publisher),
        ("insight", args.insight),
        ("licence", args.licence),
    ] {
        pairs.extend(values.into_iter().map(|v| (name, v)));
    }
    for (name, value) in [("bbox", args.bbox), ("from", args.from), ("to", args.to)] {
        if let Some(v) = value {
            pairs.push((name, v));
        }
    }
    pairs.push(("limit", args.limit.to_string()));
    let v: Value = Client::connect(home)?.get_query("/v1/search", &pairs)?;
    out.search(&v)
}

/// Reads an attestation file: raw CBOR as `cix attest --out` writes it, or its hex.
fn read_attestation(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let limit = 2 * cix_protocol::limits::MAX_ATTESTATION_BYTES + 16;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("cannot read attestation {}", path.display()))?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read attestation {}", path.display()))?;
    if bytes.len() > limit {
        bail!(
            "{} is too large for an attestation (at most {} bytes)",
            path.display(),
            cix_protocol::limits::MAX_ATTESTATION_BYTES
        );
    }
    if bytes.first() != Some(&0x82) {
        let text = String::from_utf8_lossy(&bytes);
        bytes = hex::decode(text.trim()).with_context(|| {
            format!("{} is neither a raw nor a hex attestation", path.display())
        })?;
    }
    cix_protocol::attestation::Attestation::decode(&bytes)
        .with_context(|| format!("{} is not a usable attestation", path.display()))?;
    Ok(bytes)
}

fn attest(home: &Home, args: AttestArgs, out: &mut Out) -> Result<()> {
    let v: Value = Client::connect(home)?.post(
        "/v1/attest",
        &json!({ "to": args.to, "group": args.group, "days": args.days }),
    )?;
    if let Some(path) = &args.out {
        let bytes = hex::decode(v["attestation"].as_str().unwrap_or(""))
            .context("the node returned a malformed attestation")?;
        std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let written = args
        .out
        .as_ref()
        .map(|p| format!("\n  written to {}", p.display()))
        .unwrap_or_default();
    out.message(
        &v,
        &format!(
            "attested {} as a member of {:?} until {}{written}\nthe member passes it on with: \
             cix request ID --purpose TEXT --attestation FILE",
            v["subject"].as_str().unwrap_or(""),
            v["group"].as_str().unwrap_or(""),
            v["expires"].as_i64().unwrap_or(0),
        ),
    )
}

/// Ids go into URL paths; allow only what ids are made of.
fn url_safe(id: &str) -> Result<&str> {
    if id.is_empty() || !id.bytes().all(|c| c.is_ascii_alphanumeric()) {
        bail!("{id:?} is not an id (ids are hex digits)");
    }
    Ok(id)
}

fn init(home: &Home, args: InitArgs, out: &mut Out) -> Result<()> {
    let mut config = Config::new(&args.name, &args.jurisdiction);
    config.sectors = args.sectors;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    if let Some(path) = &args.privacy {
        config.privacy = Some(receipts::read_notice(path)?);
    }
    config.validate().map_err(|e| anyhow::anyhow!(e))?;
    let key = home.init(&config)?;
    let v = json!({
        "home": home.root(),
        "name": config.name,
        "did": key.did().to_string(),
        "peer_id": cix_node::node::peer_of_did(&key.did())?.to_string(),
    });
    out.message(
        &v,
        &format!(
            "initialised {} in {}\n  did:     {}\n  peer id: {}\nstart it with: cix --home {} node run",
            config.name,
            home.root().display(),
            v["did"].as_str().unwrap_or(""),
            v["peer_id"].as_str().unwrap_or(""),
            home.root().display()
        ),
    )
}

/// What `cix node run` logs unless `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,libp2p_kad=error,libp2p_gossipsub=warn,cix::event=warn";

fn node_run(
    home: Home,
    listen: Vec<String>,
    bootstrap: Vec<String>,
    testnet_faults: bool,
) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only on a terminal; under systemd (JOURNAL_STREAM set) journald stamps each line
    // itself, so no timestamp of ours either.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
    // Defaults, then config.toml, then CIX_* variables, then these flags (docs/config.md).
    let config =
        cix_node::layers::load(&home, &cix_node::layers::Flags { listen, bootstrap })?.config;
    let token = home.load_token()?;
    if testnet_faults {
        // TESTNET ONLY (cix_node::testnet_faults): the node below builds the delaying
        // transport, and the admin API serves the fault endpoints.
        tracing::warn!("TESTNET ONLY: --testnet-faults is on; never run an agency's node so");
        cix_node::testnet_delay::enable();
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let admin_addr = config.admin_listen;
        let name = config.name.clone();
        let node = cix_node::start(home.clone(), config).await?;
        let admin = cix_node::admin::serve_with(
            node.clone(),
            admin_addr,
            token,
            cix_node::admin::Options { testnet_faults },
        )
        .await?;
        let listening: Vec<String> = node
            .listening()
            .await?
            .iter()
            .map(|a| a.to_string())
            .collect();
        home.write_runtime(&cix_node::home::RuntimeInfo {
            admin_url: format!("http://{admin}"),
            peer_id: node.peer_id().to_string(),
            did: node.did().to_string(),
            listen: listening.clone(),
            pid: std::process::id(),
        })?;
        tracing::info!(agency = %name, did = %node.did(), admin = %admin, "node running");
        for addr in &listening {
            tracing::info!("peers can dial {addr}");
        }
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = std::fs::remove_file(home.runtime());
        node.shutdown().await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

fn publish(home: &Home, args: PublishArgs, out: &mut Out) -> Result<()> {
    let path = absolute(&args.file)?;
    if !path.is_file() {
        bail!("{} is not a readable file", args.file.display());
    }
    let meta = match &args.meta {
        Some(m) => Some(
            std::fs::read_to_string(m).with_context(|| format!("cannot read {}", m.display()))?,
        ),
        None => None,
    };
    let v: Value = Client::connect(home)?.post(
        "/v1/publish",
        &json!({ "path": path, "title": args.title, "spectrum": args.spectrum, "meta": meta,
                 "accept_invalid": args.accept_invalid, "dataset": args.dataset,
                 "resolves": args.resolves }),
    )?;
    out.published(&v)
}

fn requests(home: &Home, cmd: RequestsCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    match cmd {
        RequestsCommand::List => {
            let v: Value = client.get("/v1/requests")?;
            out.requests(&v)
        }
        RequestsCommand::Approve { req } => {
            let v: Value = client.post(
                &format!("/v1/requests/{}/approve", url_safe(&req)?),
                &json!({}),
            )?;
            out.message(
                &v,
                &format!(
                    "approved request {} for dataset {}",
                    v["request"].as_str().unwrap_or(""),
                    v["dataset"].as_str().unwrap_or("")
                ),
            )
        }
        RequestsCommand::Deny { req, reason } => {
            let v: Value = client.post(
                &format!("/v1/requests/{}/deny", url_safe(&req)?),
                &json!({ "reason": reason }),
            )?;
            out.message(
                &v,
                &format!("denied request {}", v["request"].as_str().unwrap_or("")),
            )
        }
    }
}

/// On Ctrl-C during `cix fetch`: says how far it got and that the same command resumes, then
/// exits 130 (the connection closes, and the node stops the transfer, keeping what it
/// recorded). Returns where the progress goes (bytes, total).
fn interrupt_notice(json: bool) -> Arc<(AtomicU64, AtomicU64)> {
    let seen = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let at = seen.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_err() {
            return;
        }
        let (bytes, total) = (at.0.load(Ordering::Relaxed), at.1.load(Ordering::Relaxed));
        // Both locks are held until the exit, so that no progress line from the fetch can
        // follow this one.
        let (mut stdout, mut stderr) = (std::io::stdout().lock(), std::io::stderr().lock());
        let _ = if json {
            writeln!(
                stdout,
                "{}",
                json!({ "event": "interrupted", "bytes": bytes, "total": total })
            )
        } else {
            writeln!(
                stderr,
                "\ninterrupted at {bytes} of {total} bytes; what was verified is kept: run the \
                 same command again to resume (`cix transfers` lists it)"
            )
        };
        let _ = (stdout.flush(), stderr.flush());
        std::process::exit(130);
    });
    seen
}

fn fetch(home: &Home, args: FetchArgs, out: &mut Out) -> Result<()> {
    let output = absolute(&args.output)?;
    let client = Client::connect(home)?;
    let from = args
        .from
        .iter()
        .map(|p| ops::resolve_peer(&client, p))
        .collect::<Result<Vec<_>>>()?;
    let bar = (!out.is_json() && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let seen = interrupt_notice(out.is_json());
    let mut result: Option<Result<Value>> = None;
    client.post_lines(
        "/v1/fetch",
        &json!({ "dataset": args.id, "output": output, "from": from }),
        |line| {
            match line["event"].as_str() {
                Some("progress") => {
                    let bytes = line["bytes"].as_u64().unwrap_or(0);
                    let total = line["total"].as_u64().unwrap_or(0);
                    seen.0.store(bytes, Ordering::Relaxed);
                    seen.1.store(total, Ordering::Relaxed);
                    if let Some(bar) = &bar {
                        bar.set_length(total);
                        bar.set_position(bytes);
                    }
                    if out.is_json() {
                        out.line(&line)?;
                    }
                }
                Some("done") => result = Some(Ok(line)),
                Some("error") => {
                    result = Some(Err(anyhow::anyhow!(
                        "{}",
                        line["error"].as_str().unwrap_or("fetch failed")
                    )))
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    match result {
        Some(Ok(v)) => out.fetched(&v),
        Some(Err(e)) => Err(e),
        None => bail!("the node ended the fetch without a result"),
    }
}
