//! `cix-testnet bench transfer`: how fast a dataset moves between two `cix node run` processes
//! on this machine, against a plain unencrypted TCP copy measured in the same run.
//!
//! One generated file of incompressible bytes (BLAKE3's extendable output, which is far faster
//! than the transfer) is published as an open dataset on an owner node and fetched with
//! `cix fetch` by a second node, once per repetition, over each transport asked for. Each fetch
//! is encrypted (TLS or Noise over TCP, or QUIC) and verified against the dataset's BLAKE3, and
//! `cix fetch` returns only once the file is fsynced and renamed into place. The bench then
//! hashes the received file again and compares it with the source byte for byte (ISO 37156 7.3.2
//! integrity).
//!
//! The baseline is the floor of what any transfer here has to do: a second process (this binary's
//! hidden `bench-sink` subcommand) receives a plain TCP stream over 127.0.0.1, hashes it with
//! BLAKE3 as it arrives and writes it to a fresh file that it fsyncs, as a pipe from `nc`
//! through `b3sum` into a file would. Both the baseline and the fetches write fresh files (never
//! overwrite), since writing into new files is what a fetch does and it is the slow, erratic part
//! on these machines. A fetch writes its verified bytes with direct I/O (transfer.md §7), which
//! spares it the page cache that the plain copy goes through, so the bench also measures the
//! same plain copy writing with direct I/O (`baseline-direct`) and gives the ratio to it too:
//! the fairer comparison of the two.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

/// Size of the reads and writes of the baseline copy and of the file generator.
pub const COPY_BUFFER: usize = 1024 * 1024;
/// Largest file the bench generates.
pub const MAX_SIZE: u64 = 64 * 1024 * 1024 * 1024;

/// A transport the bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// TCP, TLS 1.3 (AES-GCM), Yamux: the default for TCP.
    Tcp,
    /// TCP, Noise (ChaCha20-Poly1305), Yamux.
    TcpNoise,
    /// QUIC v1 (TLS 1.3 inside QUIC).
    Quic,
}

impl Transport {
    /// Every transport, in the order `--transport all` measures them.
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::TcpNoise, Transport::Quic];

    /// The name `--transport` takes.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::TcpNoise => "tcp-noise",
            Transport::Quic => "quic",
        }
    }

    /// What it is, for the text report.
    pub fn stack(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP + TLS 1.3 + Yamux",
            Transport::TcpNoise => "TCP + Noise + Yamux",
            Transport::Quic => "QUIC v1",
        }
    }

    fn listen(self) -> &'static str {
        match self {
            Transport::Tcp | Transport::TcpNoise => "/ip4/127.0.0.1/tcp/0",
            Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
        }
    }

    fn security(self) -> &'static str {
        match self {
            Transport::TcpNoise => "noise",
            _ => "tls",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes in the generated file.
    pub size: u64,
    /// Transports to measure.
    pub transports: Vec<Transport>,
    /// Repetitions of the baseline and of each transport; the median is reported.
    pub runs: usize,
    /// The `cix` binary.
    pub cix: PathBuf,
    /// This binary, run as the baseline's receiver.
    pub sink: PathBuf,
    /// Directory for the nodes' homes and the files (a temporary one if `None`).
    pub dir: Option<PathBuf>,
    /// Longest wait for a node to start or a dataset to arrive in a catalogue.
    pub timeout: Duration,
}

/// Figures of one thing measured.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// `baseline` or a transport's name.
    pub name: String,
    /// What it is.
    pub stack: String,
    /// Median rate of the runs, MiB/s.
    pub mib_per_s: f64,
    /// Every run's rate, MiB/s.
    pub runs_mib_per_s: Vec<f64>,
    /// Median rate divided by the baseline's median rate.
    pub ratio: f64,
    /// Median rate divided by the direct-write baseline's median rate.
    pub ratio_direct: f64,
    /// Every received file had the published BLAKE3 and the source's bytes.
    pub identical: bool,
}

/// The result of `cix-testnet bench transfer`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Bytes moved per run.
    pub bytes: u64,
    /// Runs per figure.
    pub runs: usize,
    /// BLAKE3 of the generated file: the published content id.
    pub content_hash: String,
    /// The plain TCP copy through BLAKE3, written through the page cache.
    pub baseline: Figures,
    /// The same copy written with direct I/O, as a fetch writes.
    pub baseline_direct: Figures,
    /// One per transport measured.
    pub transports: Vec<Figures>,
    /// Receivers write fresh files (true always: the figures say so).
    pub fresh_files: bool,
    /// Every check held.
    pub ok: bool,
}

impl Report {
    /// The text form.
    pub fn text(&self) -> String {
        let mut s = format!(
            "transfer of {} ({} bytes, BLAKE3 {}), median of {} run(s), fresh files on the receiver\n",
            human(self.bytes),
            self.bytes,
            self.content_hash,
            self.runs
        );
        for f in [&self.baseline, &self.baseline_direct]
            .into_iter()
            .chain(&self.transports)
        {
            let runs: Vec<String> = f.runs_mib_per_s.iter().map(|r| format!("{r:.0}")).collect();
            s.push_str(&format!(
                "  {:<15} {:<45} {:>7.1} MiB/s  ratio {:.2} (direct {:.2})  runs [{}]{}\n",
                f.name,
                f.stack,
                f.mib_per_s,
                f.ratio,
                f.ratio_direct,
                runs.join(", "),
                if f.identical { "" } else { "  NOT IDENTICAL" }
            ));
        }
        s.pop();
        s
    }
}

fn human(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} B")
    }
}

/// Parses a size such as `1GiB`, `8MiB`, `512KiB` or a plain number of bytes.
///
/// # Errors
///
/// If the text is not such a size, is zero, or is over [`MAX_SIZE`].
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1GiB, 64MiB or 1048576"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    let size = n
        .checked_mul(scale)
        .filter(|s| (1..=MAX_SIZE).contains(s))
        .ok_or_else(|| format!("size {text:?} must be between 1 byte and 64 GiB"))?;
    Ok(size)
}

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the whole bench.
///
/// # Errors
///
/// If a node cannot be started, a command fails, or a wait runs out. A received file that
/// differs is not an error: the report says so and is not ok.
pub fn run(opts: &Options) -> Result<Report> {
    if opts.runs == 0 {
        bail!("at least one run is needed");
    }
    let temp;
    let dir = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("cix-bench-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let source = dir.join("source.bin");
    let content = generate(&source, opts.size)?;
    tracing::debug!(bytes = opts.size, %content, "generated the source file");

    // The two baselines alternate, so that a change in the machine's load touches both.
    let (mut rates, mut direct_rates) = (Vec::new(), Vec::new());
    for i in 0..opts.runs {
        for (direct, into) in [(false, &mut rates), (true, &mut direct_rates)] {
            let out = dir.join(format!("baseline-{i}-{direct}.bin"));
            let (rate, hash) =
                baseline_once(&opts.sink, &source, &out, opts.size, opts.timeout, direct)?;
            if hash != content {
                bail!("the baseline copy arrived with BLAKE3 {hash}, not {content}");
            }
            let _ = std::fs::remove_file(&out);
            into.push(rate);
        }
    }
    let base = median(&rates);
    let base_direct = median(&direct_rates);
    let ratio = |m: f64, b: f64| if b > 0.0 { m / b } else { 0.0 };
    let baseline = Figures {
        name: "baseline".into(),
        stack: "plain TCP copy + BLAKE3, 1 MiB writes".into(),
        mib_per_s: base,
        runs_mib_per_s: rates,
        ratio: 1.0,
        ratio_direct: ratio(base, base_direct),
        identical: true,
    };
    let baseline_direct = Figures {
        name: "baseline-direct".into(),
        stack: "plain TCP copy + BLAKE3, 1 MiB direct writes".into(),
        mib_per_s: base_direct,
        runs_mib_per_s: direct_rates,
        ratio: ratio(base_direct, base),
        ratio_direct: 1.0,
        identical: true,
    };

    let mut transports = Vec::new();
    for &t in &opts.transports {
        let mut f = transport_runs(opts, &dir, t, &source, &content, base)?;
        f.ratio_direct = ratio(f.mib_per_s, base_direct);
        transports.push(f);
    }
    let ok = transports.iter().all(|f| f.identical);
    Ok(Report {
        bytes: opts.size,
        runs: opts.runs,
        content_hash: content,
        baseline,
        baseline_direct,
        transports,
        fresh_files: true,
        ok,
    })
}

fn median(rates: &[f64]) -> f64 {
    let mut v = rates.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

/// Writes `size` incompressible bytes to `path` and returns their BLAKE3, hex.
fn generate(path: &Path, size: u64) -> Result<String> {
    let mut seed = blake3::Hasher::new_derive_key("cix-testnet bench transfer source 1");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    seed.update(&nanos.to_le_bytes());
    seed.update(&std::process::id().to_le_bytes());
    let mut stream = seed.finalize_xof();
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut left = size;
    while left > 0 {
        let n = COPY_BUFFER.min(usize::try_from(left).unwrap_or(COPY_BUFFER));
        stream.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("cannot write {} (disk full?)", path.display()))?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// One baseline run: start the sink, send it the file, wait for its verdict.
fn baseline_once(
    sink: &Path,
    source: &Path,
    out: &Path,
    size: u64,
    timeout: Duration,
    direct: bool,
) -> Result<(f64, String)> {
    let mut child = Reaped(
        Command::new(sink)
            .arg("bench-sink")
            .args(direct.then_some("--direct"))
            .arg("--out")
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {} bench-sink", sink.display()))?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow!("the sink has no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .transpose()?
        .ok_or_else(|| anyhow!("the sink exited before listening"))?;
    let port: u16 = first
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow!("the sink said {first:?} instead of its port"))?;
    let mut file =
        std::fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
    let mut buf = vec![0u8; COPY_BUFFER];
    let start = Instant::now();
    let mut conn = TcpStream::connect(("127.0.0.1", port)).context("cannot reach the sink")?;
    conn.set_write_timeout(Some(timeout))?;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])
            .context("the sink stopped reading")?;
    }
    conn.shutdown(std::net::Shutdown::Write)?;
    let verdict = lines
        .next()
        .transpose()?
        .ok_or_else(|| anyhow!("the sink exited without a result"))?;
    let elapsed = start.elapsed();
    let v: serde_json::Value =
        serde_json::from_str(&verdict).with_context(|| format!("sink said {verdict:?}"))?;
    let got = v["bytes"].as_u64().unwrap_or(0);
    if got != size {
        bail!("the sink received {got} of {size} bytes");
    }
    let hash = v["blake3"].as_str().unwrap_or_default().to_string();
    let _ = child.0.wait();
    Ok((mib_per_s(size, elapsed), hash))
}

/// The hidden `bench-sink` subcommand: accept one plain TCP connection on 127.0.0.1, hash what
/// arrives with BLAKE3 while writing it to `out` (a new file) in writes of [`COPY_BUFFER`]
/// (with direct I/O when `direct`, as a fetch writes, where the file system allows), fsync, and
/// print `{"bytes":N,"blake3":"HEX"}`. Prints `listening PORT` first.
///
/// # Errors
///
/// If the socket or the file cannot be used.
pub fn sink(out: &Path, timeout: Duration, direct: bool) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("cannot listen on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {port}")?;
    stdout.flush()?;
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(timeout))?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let direct_file = if direct {
        cix_node::verified::open_direct(out)
    } else {
        None
    };
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; COPY_BUFFER];
    // Whole buffers go out at once (aligned for direct I/O); the last, partial one at the end.
    let mut gathered = cix_node::verified::AlignedBuf::with_capacity(COPY_BUFFER);
    let mut bytes = 0u64;
    let mut written = 0u64;
    let mut flush = |gathered: &mut cix_node::verified::AlignedBuf| -> Result<()> {
        cix_node::verified::write_all_at(&file, direct_file.as_ref(), gathered.as_slice(), written)
            .with_context(|| format!("cannot write {} (disk full?)", out.display()))?;
        written += gathered.len() as u64;
        gathered.clear();
        Ok(())
    };
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let take = rest.len().min(COPY_BUFFER - gathered.len());
            gathered.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if gathered.len() == COPY_BUFFER {
                flush(&mut gathered)?;
            }
        }
        bytes += n as u64;
    }
    flush(&mut gathered)?;
    file.sync_all()?;
    let hash = hasher.finalize().to_hex().to_string();
    writeln!(
        stdout,
        "{}",
        serde_json::json!({ "bytes": bytes, "blake3": hash })
    )?;
    stdout.flush()?;
    Ok(())
}

fn cix(bin: &Path, home: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "cix {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts `cix node run` for `home` and waits for its `node.json`; returns its first address.
fn start_node(
    opts: &Options,
    home: &Path,
    t: Transport,
    bootstrap: Option<&str>,
) -> Result<(Reaped, String)> {
    let mut cmd = Command::new(&opts.cix);
    cmd.arg("--home")
        .arg(home)
        .args(["node", "run", "--listen", t.listen()]);
    crate::tie_to_this_process(&mut cmd);
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let child = Reaped(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {} node run", opts.cix.display()))?,
    );
    let info = home.join("node.json");
    wait_for("a node to start", opts.timeout, || info.exists())?;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&info)?)?;
    let addr = v["listen"][0]
        .as_str()
        .ok_or_else(|| anyhow!("{} lists no address", info.display()))?
        .to_string();
    Ok((child, addr))
}

fn init(opts: &Options, home: &Path, name: &str, t: Transport) -> Result<()> {
    cix(
        &opts.cix,
        home,
        &["init", "--name", name, "--jurisdiction", "US"],
    )?;
    let config = home.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let default = "tcp_security = \"tls\"";
    if !text.contains(default) {
        bail!("{} has no line {default}", config.display());
    }
    let text = text.replace(default, &format!("tcp_security = \"{}\"", t.security()));
    std::fs::write(&config, text)?;
    Ok(())
}

fn transport_runs(
    opts: &Options,
    dir: &Path,
    t: Transport,
    source: &Path,
    content: &str,
    base: f64,
) -> Result<Figures> {
    let owner = dir.join(format!("{}-owner", t.name()));
    let fetcher = dir.join(format!("{}-fetcher", t.name()));
    init(opts, &owner, "Bench Owner", t)?;
    init(opts, &fetcher, "Bench Fetcher", t)?;
    let (_owner_node, addr) = start_node(opts, &owner, t, None)?;
    let (_fetcher_node, _) = start_node(opts, &fetcher, t, Some(&addr))?;
    let source_text = source.to_string_lossy().into_owned();
    let id = cix(
        &opts.cix,
        &owner,
        &[
            "publish",
            &source_text,
            "--title",
            "Bench payload",
            "--spectrum",
            "open",
        ],
    )?
    .trim()
    .to_string();
    wait_for(
        "the dataset in the fetcher's catalogue",
        opts.timeout,
        || cix(&opts.cix, &fetcher, &["catalogue", "show", &id]).is_ok(),
    )?;
    let mut rates = Vec::new();
    let mut identical = true;
    for i in 0..opts.runs {
        let out = dir.join(format!("{}-fetched-{i}.bin", t.name()));
        let out_text = out.to_string_lossy().into_owned();
        let start = Instant::now();
        let line = cix(
            &opts.cix,
            &fetcher,
            &["--json", "fetch", &id, "-o", &out_text],
        )?;
        let elapsed = start.elapsed();
        let reported = line
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v["content_hash"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let same = reported == content && same_bytes(source, &out, content)?;
        if !same {
            tracing::warn!(transport = t.name(), run = i, "the fetched file differs");
        }
        identical &= same;
        let _ = std::fs::remove_file(&out);
        rates.push(mib_per_s(opts.size, elapsed));
    }
    let m = median(&rates);
    Ok(Figures {
        name: t.name().into(),
        stack: t.stack().into(),
        mib_per_s: m,
        runs_mib_per_s: rates,
        ratio: if base > 0.0 { m / base } else { 0.0 },
        ratio_direct: 0.0,
        identical,
    })
}

/// Whether `got` hashes to `content` and holds exactly the bytes of `source`.
fn same_bytes(source: &Path, got: &Path, content: &str) -> Result<bool> {
    let mut a = BufReader::with_capacity(COPY_BUFFER, std::fs::File::open(source)?);
    let mut b = BufReader::with_capacity(
        COPY_BUFFER,
        std::fs::File::open(got).with_context(|| format!("{} is missing", got.display()))?,
    );
    let mut hasher = blake3::Hasher::new();
    loop {
        let (fa, fb) = (a.fill_buf()?, b.fill_buf()?);
        if fa.is_empty() || fb.is_empty() {
            let equal = fa.is_empty() && fb.is_empty();
            return Ok(equal && hasher.finalize().to_hex().as_str() == content);
        }
        let n = fa.len().min(fb.len());
        if fa[..n] != fb[..n] {
            return Ok(false);
        }
        hasher.update(&fa[..n]);
        a.consume(n);
        b.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("65GiB").is_err());
        assert!(parse_size("1TB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn a_flipped_or_missing_byte_is_not_identical() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("s");
        let hash = generate(&src, 3 * COPY_BUFFER as u64 + 11).unwrap();
        let mut bytes = std::fs::read(&src).unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), hash);
        let copy = dir.path().join("c");
        std::fs::write(&copy, &bytes).unwrap();
        assert!(same_bytes(&src, &copy, &hash).unwrap());
        bytes[2 * COPY_BUFFER + 5] ^= 1;
        std::fs::write(&copy, &bytes).unwrap();
        assert!(!same_bytes(&src, &copy, &hash).unwrap());
        bytes[2 * COPY_BUFFER + 5] ^= 1;
        bytes.pop();
        std::fs::write(&copy, &bytes).unwrap();
        assert!(!same_bytes(&src, &copy, &hash).unwrap());
    }

    #[test]
    fn the_median_takes_the_middle_run() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
