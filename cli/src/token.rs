//! The token commands: `cix token inspect` and `cix token verify` work offline on files, with
//! no node; `cix grant`, `cix delegate` and `cix tokens list|import` go through the running
//! node's admin API, since only the node holds the agency's key and its delegations.
//!
//! A token file may hold the raw DAG-CBOR bytes, the same in hex or base64 (standard or
//! URL-safe, padded or not), or DAG-JSON bytes `{"/": {"bytes": "<base64>"}}` as the UCAN
//! working group's fixtures write them; what was found is reported as `read_as`. A file is read
//! up to [`MAX_INPUT_BYTES`] and no further.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use ciborium::Value as Cbor;
use cix_node::Home;
use cix_protocol::envelope::Envelope;
use cix_protocol::ucan::{
    self, Cid, Delegation, Invocation, DELEGATION_TAG, DELEGATION_TAG_RC1, INVOCATION_TAG,
    INVOCATION_TAG_RC1, MAX_TOKEN_BYTES,
};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Client;
use crate::output::Out;

/// Most bytes read from a token file or stdin: a largest token written as padded text, with
/// room for a JSON wrapper and line breaks. Anything longer cannot hold a token.
pub(crate) const MAX_INPUT_BYTES: usize = MAX_TOKEN_BYTES * 2 + 1024;

/// Base64 in either alphabet's padding style.
const fn b64(alphabet: &base64::alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}
const BASE64: GeneralPurpose = b64(&base64::alphabet::STANDARD);
const BASE64_URL: GeneralPurpose = b64(&base64::alphabet::URL_SAFE);

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Decode one UCAN token (any implementation's) and show its fields, CID and whether its
    /// signature holds. Works offline.
    Inspect {
        /// Token file (raw bytes, hex, base64 or DAG-JSON bytes), or - for stdin.
        #[arg(value_name = "FILE|-")]
        input: String,
    },
    /// Validate an invocation with its delegation chain and name the first failure, under
    /// UCAN 1.0 and then the cix profile. Works offline. Exit code 0 only if both accept.
    Verify {
        /// The moment to validate at, Unix seconds (default: now).
        #[arg(long, value_name = "UNIX_TIME", allow_negative_numbers = true)]
        at: Option<i64>,
        /// Judge by UCAN 1.0 alone: exit 0 when the chain is valid UCAN even if the cix
        /// profile refuses it (the profile verdict is still shown).
        #[arg(long)]
        ucan_only: bool,
        /// Token files: the delegations root first, then the invocation last.
        #[arg(required = true, value_name = "TOKEN")]
        tokens: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Every delegation this node issued or received: CID, audience, command, dataset, expiry,
    /// state.
    List,
    /// Keep a delegation chain addressed to this node (files root first, as `cix grant --out`
    /// writes them), so it can be used and passed on.
    Import {
        /// Token files, root first; the last delegation must be addressed to this node.
        #[arg(required = true, value_name = "TOKEN")]
        tokens: Vec<String>,
    },
    /// Re-check every live grant this node issued against the current rules (ISO 37156
    /// 8.2.5): the dataset's allowed jurisdictions, the holder's jurisdiction, the trusted
    /// registrars. Grants that no longer hold are revoked, with the reason sent to holders.
    Recheck,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    /// Dataset id (or a unique prefix) of a dataset this node published.
    dataset: String,
    /// The agency receiving the delegation, as did:key:z6Mk….
    #[arg(long, value_name = "DID")]
    to: String,
    /// Days the delegation is valid (default: the node's grant_days; at most 366).
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// What the data may be used for: a caveat in the token's policy, also kept in its meta
    /// (ISO 37156 8.2.2 b, 8.3.4).
    #[arg(long, value_name = "TEXT")]
    purpose: Option<String>,
    /// The command delegated (default /cix/data/fetch). /cix/data/republish gives a secondary
    /// publisher republication rights, which include fetching (ISO 37156 9.2 e); /cix/data
    /// covers both and lets it pass on fetch-only rights.
    #[arg(long, visible_alias = "cmd", value_name = "CMD")]
    command: Option<String>,
    /// Limit the grant to these fields (data dictionary names, comma-separated) of a CSV
    /// dataset: the audience receives a projection with only these columns (ISO 37156 8.2.2 c,
    /// data adequate, relevant and not excessive).
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// Make the audience a custodian of this shared dataset: it may serve the copy it holds to
    /// requesters this node granted (the same as --cmd /cix/data/serve; specs/transfer.md §6).
    #[arg(long, conflicts_with_all = ["command", "fields"])]
    serve: bool,
    /// Write the chain to DIR as NN-CID.ucan files, root first, to hand to the audience.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DelegateArgs {
    /// CID (or a unique prefix) of a delegation this node received.
    cid: String,
    /// The agency receiving the new delegation, as did:key:z6Mk….
    #[arg(long, value_name = "DID")]
    to: String,
    /// Days the delegation is valid, never beyond the received one's expiry (default: the
    /// node's grant_days).
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// What the data may be used for; signed into the token's meta.
    #[arg(long, value_name = "TEXT")]
    purpose: Option<String>,
    /// A command at or beneath the received one (default: the received one).
    #[arg(long, visible_alias = "cmd", value_name = "CMD")]
    command: Option<String>,
    /// Write the whole chain to DIR as NN-CID.ucan files, root first.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `cix token …`.
pub(crate) fn token(cmd: TokenCommand, out: &mut Out) -> Result<()> {
    match cmd {
        TokenCommand::Inspect { input } => inspect(&input, out),
        TokenCommand::Verify {
            at,
            ucan_only,
            tokens,
        } => verify(at, ucan_only, &tokens, out),
    }
}

/// Runs `cix tokens …`.
pub(crate) fn tokens(home: &Home, cmd: TokensCommand, out: &mut Out) -> Result<()> {
    let client = Client::connect(home)?;
    match cmd {
        TokensCommand::List => {
            let lines: Vec<Value> = client.get("/v1/tokens")?;
            list(&lines, out)
        }
        TokensCommand::Import { tokens } => {
            let mut chain = Vec::new();
            for path in &tokens {
                chain.push(hex::encode(read_token(path)?.bytes));
            }
            let v: Value = client.post("/v1/tokens/import", &json!({ "chain": chain }))?;
            issued(&v, None, out, "imported")
        }
        TokensCommand::Recheck => {
            let lines: Vec<Value> = client.post("/v1/grants/recheck", &json!({}))?;
            for l in &lines {
                if out.is_json() {
                    out.line(l)?;
                } else {
                    out.message(
                        l,
                        &format!(
                            "{}  {}  {}  {}{}",
                            l["verdict"].as_str().unwrap_or("-"),
                            l["cid"].as_str().unwrap_or("-"),
                            l["holder"].as_str().unwrap_or("-"),
                            l["dataset"].as_str().unwrap_or("-"),
                            l["reason"]
                                .as_str()
                                .map(|r| format!("  ({r})"))
                                .unwrap_or_default()
                        ),
                    )?;
                }
            }
            Ok(())
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// CID of the delegation (or a unique prefix of one this node issued; see `cix tokens
    /// list`). A full CID issued downstream of one of this node's delegations works too.
    cid: String,
    /// Why; shown to whoever presents the revoked delegation.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

/// Runs `cix revoke`.
pub(crate) fn revoke(home: &Home, args: RevokeArgs, out: &mut Out) -> Result<()> {
    let v: Value = Client::connect(home)?.post(
        "/v1/revoke",
        &json!({ "cid": args.cid, "reason": args.reason }),
    )?;
    let mut text = format!(
        "revoked {}\nrevocation {} gossiped to {} peer(s); nodes that were away get it when they \
         reconnect",
        v["revoked"].as_str().unwrap_or("-"),
        v["revocation"].as_str().unwrap_or("-"),
        v["announced_to"]
    );
    if v["issued_here"] == Value::Bool(false) {
        text.push_str(
            "\nnote: this node did not issue that delegation; the revocation holds only on \
             chains in which this node is upstream of it",
        );
    }
    out.message(&v, &text)
}

/// Runs `cix revocations`.
pub(crate) fn revocations(home: &Home, out: &mut Out) -> Result<()> {
    let lines: Vec<Value> = Client::connect(home)?.get("/v1/revocations")?;
    if out.is_json() {
        return lines.iter().try_for_each(|l| out.line(l));
    }
    if lines.is_empty() {
        return out.message(&Value::Null, "no revocations known");
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(vec!["revoked", "by", "at", "reason"]);
    for l in &lines {
        let s = |k: &str| l[k].as_str().unwrap_or("-").to_string();
        let by = if l["issued_here"] == Value::Bool(true) {
            format!("{} (this node)", s("by"))
        } else {
            s("by")
        };
        t.add_row(vec![s("revoked"), by, expiry(&l["at"]), s("reason")]);
    }
    out.message(&Value::Null, &t.to_string())
}

/// Runs `cix grant`.
pub(crate) fn grant(home: &Home, args: GrantArgs, out: &mut Out) -> Result<()> {
    // Before anything is signed: a grant must not be issued when its files cannot be written.
    prepare_out(args.out.as_deref())?;
    let command = if args.serve {
        Some(cix_protocol::ucan::CMD_SERVE.to_string())
    } else {
        args.command
    };
    let v: Value = Client::connect(home)?.post(
        "/v1/grant",
        &json!({ "dataset": args.dataset, "to": args.to, "days": args.days,
                 "purpose": args.purpose, "command": command, "fields": args.fields }),
    )?;
    issued(&v, args.out, out, "granted")
}

/// Runs `cix delegate`.
pub(crate) fn delegate(home: &Home, args: DelegateArgs, out: &mut Out) -> Result<()> {
    // Before anything is signed: a grant must not be issued when its files cannot be written.
    prepare_out(args.out.as_deref())?;
    let v: Value = Client::connect(home)?.post(
        "/v1/delegate",
        &json!({ "cid": args.cid, "to": args.to, "days": args.days,
                 "purpose": args.purpose, "command": args.command }),
    )?;
    issued(&v, args.out, out, "delegated")
}

// ---------------------------------------------------------------------------------------------
// Reading tokens

/// Token bytes and the form they were found in.
struct Input {
    bytes: Vec<u8>,
    read_as: &'static str,
}

/// Reads a token from a file or stdin (`-`), at most [`MAX_INPUT_BYTES`].
fn read_token(path: &str) -> Result<Input> {
    let mut raw = Vec::new();
    let limit = (MAX_INPUT_BYTES + 1) as u64;
    if path == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut raw)
            .context("cannot read the token from stdin")?;
    } else {
        std::fs::File::open(path)
            .with_context(|| format!("cannot open token file {path}"))?
            .take(limit)
            .read_to_end(&mut raw)
            .with_context(|| format!("cannot read token file {path}"))?;
    }
    let name = if path == "-" { "stdin" } else { path };
    if raw.len() > MAX_INPUT_BYTES {
        bail!(
            "{name} holds more than {MAX_INPUT_BYTES} bytes: no UCAN token is that large \
             (tokens are at most {MAX_TOKEN_BYTES} bytes)"
        );
    }
    let input = detect(&raw).with_context(|| format!("{name} does not hold a token"))?;
    if input.bytes.len() > MAX_TOKEN_BYTES {
        bail!(
            "{name} holds a {}-byte token; cix reads tokens of at most {MAX_TOKEN_BYTES} bytes",
            input.bytes.len()
        );
    }
    Ok(input)
}

/// Works out which form `raw` is in and decodes it.
fn detect(raw: &[u8]) -> Result<Input> {
    // A token is a CBOR array of two items (0x82); as text no form starts with that byte.
    if raw.first() == Some(&0x82) {
        return Ok(Input {
            bytes: raw.to_vec(),
            read_as: "raw DAG-CBOR",
        });
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| {
            anyhow!(
                "it is neither DAG-CBOR (a token starts with byte 0x82, this starts with 0x{:02x}) \
                 nor text",
                raw.first().copied().unwrap_or(0)
            )
        })?
        .trim();
    if text.is_empty() {
        bail!("it is empty");
    }
    if text.starts_with('{') {
        let json: Value = serde_json::from_str(text).context("it starts with { but is not JSON")?;
        let b = json
            .get("/")
            .and_then(|l| l.get("bytes"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("JSON, but not DAG-JSON bytes {{\"/\": {{\"bytes\": …}}}}"))?;
        let bytes = BASE64
            .decode(b)
            .context("DAG-JSON bytes that are not base64")?;
        return Ok(Input {
            bytes,
            read_as: "DAG-JSON bytes",
        });
    }
    // Hex digits are base64 characters too: take hex when it gives a CBOR array of two.
    if text.len() % 2 == 0 && text.bytes().all(|c| c.is_ascii_hexdigit()) {
        if let Ok(bytes) = hex::decode(text) {
            if bytes.first() == Some(&0x82) {
                return Ok(Input {
                    bytes,
                    read_as: "hex",
                });
            }
        }
    }
    let compact: String = text.split_ascii_whitespace().collect();
    if let Ok(bytes) = BASE64.decode(&compact) {
        return Ok(Input {
            bytes,
            read_as: "base64",
        });
    }
    if let Ok(bytes) = BASE64_URL.decode(&compact) {
        return Ok(Input {
            bytes,
            read_as: "base64url",
        });
    }
    bail!("text that is not hex, base64, base64url or DAG-JSON bytes")
}

// ---------------------------------------------------------------------------------------------
// Inspect

/// `cix token inspect`.
fn inspect(path: &str, out: &mut Out) -> Result<()> {
    let input = read_token(path)?;
    let v = describe(&input)?;
    if out.is_json() {
        return out.line(&v);
    }
    print_fields(&v, out)
}

/// Everything `inspect` shows, as one JSON object.
fn describe(input: &Input) -> Result<Value> {
    let env = Envelope::decode(&input.bytes, MAX_TOKEN_BYTES)
        .map_err(|e| anyhow!("not a UCAN token envelope: {e}"))?;
    let tag = env.tag().to_string();
    let mut v = json!({
        "type": "token",
        "read_as": input.read_as,
        "bytes": input.bytes.len(),
        "tag": tag,
        "cid": Cid::of_token(&input.bytes).to_string(),
    });
    let issuer = match tag.as_str() {
        DELEGATION_TAG | DELEGATION_TAG_RC1 => {
            let d = Delegation::from_value(env.payload_value())
                .map_err(|e| anyhow!("a delegation ({tag}) whose payload is refused: {e}"))?;
            v["kind"] = json!("delegation");
            v["issuer"] = json!(d.iss.to_string());
            v["audience"] = json!(d.aud.to_string());
            v["subject"] = json!(d.sub.map(|s| s.to_string()));
            v["command"] = json!(d.cmd);
            v["policy"] = dag_json(&d.pol.to_value());
            v["nonce"] = json!(hex::encode(&d.nonce));
            v["expires"] = time_json(d.exp);
            v["not_before"] = time_json(d.nbf);
            v["meta"] = d.meta.as_ref().map_or(Value::Null, map_json);
            let strict = Delegation::decode(&input.bytes).err();
            v["strict"] = json!(strict.map_or("ok".to_string(), |e| e.to_string()));
            d.iss
        }
        INVOCATION_TAG | INVOCATION_TAG_RC1 => {
            let i = Invocation::from_value(env.payload_value())
                .map_err(|e| anyhow!("an invocation ({tag}) whose payload is refused: {e}"))?;
            v["kind"] = json!("invocation");
            v["issuer"] = json!(i.iss.to_string());
            v["audience"] = json!(i.aud.map(|a| a.to_string()));
            v["subject"] = json!(i.sub.to_string());
            v["command"] = json!(i.cmd);
            v["args"] = map_json(&i.args);
            v["nonce"] = json!(hex::encode(&i.nonce));
            v["expires"] = time_json(i.exp);
            v["issued_at"] = time_json(i.iat);
            v["proofs"] = json!(i.prf.iter().map(Cid::to_string).collect::<Vec<_>>());
            v["cause"] = json!(i.cause.map(|c| c.to_string()));
            v["meta"] = i.meta.as_ref().map_or(Value::Null, map_json);
            let strict = Invocation::decode(&input.bytes).err();
            v["strict"] = json!(strict.map_or("ok".to_string(), |e| e.to_string()));
            i.iss
        }
        other => bail!(
            "an envelope of type {other:?}, not a UCAN delegation ({DELEGATION_TAG}) or \
             invocation ({INVOCATION_TAG})"
        ),
    };
    v["version"] = json!(tag.split('@').nth(1).unwrap_or(""));
    match env.verify(&issuer.public_key()) {
        Ok(()) => v["signature"] = json!("valid"),
        Err(e) => {
            v["signature"] = json!("invalid");
            v["signature_error"] = json!(e.to_string());
        }
    }
    Ok(v)
}

fn print_fields(v: &Value, out: &mut Out) -> Result<()> {
    let text = |key: &str| match &v[key] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let when = |key: &str| match &v[key] {
        Value::Null => "none".to_string(),
        t => format!(
            "{} ({})",
            t["unix"],
            t["utc"].as_str().unwrap_or("out of calendar range")
        ),
    };
    let mut lines = vec![
        format!("read as:     {} ({} bytes)", text("read_as"), text("bytes")),
        format!("kind:        {} (UCAN {})", text("kind"), text("version")),
        format!("cid:         {}", text("cid")),
        format!("issuer:      {}", text("issuer")),
        format!("audience:    {}", text("audience")),
        format!("subject:     {}", text("subject")),
        format!("command:     {}", text("command")),
    ];
    if v["kind"] == "delegation" {
        lines.push(format!("policy:      {}", text("policy")));
        lines.push(format!("not before:  {}", when("not_before")));
    } else {
        lines.push(format!("args:        {}", text("args")));
        lines.push(format!("issued at:   {}", when("issued_at")));
    }
    lines.push(format!("expires:     {}", when("expires")));
    lines.push(format!("nonce:       {}", text("nonce")));
    if let Some(prf) = v["proofs"].as_array() {
        if prf.is_empty() {
            lines.push("proofs:      none".into());
        }
        for (i, p) in prf.iter().enumerate() {
            let label = if i == 0 { "proofs:" } else { "" };
            lines.push(format!("{label:<13}{}", p.as_str().unwrap_or("")));
        }
    }
    if !v["meta"].is_null() {
        lines.push(format!("meta:        {}", text("meta")));
    }
    lines.push(match v["signature"].as_str() {
        Some("valid") => "signature:   valid (ed25519 verify_strict, issuer's key)".into(),
        _ => format!("signature:   INVALID: {}", text("signature_error")),
    });
    lines.push(match v["strict"].as_str() {
        Some("ok") => "encoding:    canonical DAG-CBOR, strict decoding passes".into(),
        _ => format!(
            "encoding:    refused by strict decoding: {}",
            text("strict")
        ),
    });
    out.message(v, &lines.join("\n"))
}

/// A time as `{"unix": n, "utc": "…"}` (`utc` null when outside the calendar's range).
fn time_json(t: Option<i64>) -> Value {
    let Some(t) = t else { return Value::Null };
    let utc = time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    json!({ "unix": t, "utc": utc })
}

fn map_json(map: &BTreeMap<String, Cbor>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), dag_json(v))).collect())
}

/// A CBOR value in DAG-JSON's spirit: bytes as `{"/": {"bytes": base64}}`, links as
/// `{"/": cid}`, integers beyond JSON's safe range as text.
fn dag_json(v: &Cbor) -> Value {
    match v {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => json!(b),
        Cbor::Integer(i) => {
            let n = i128::from(*i);
            match (i64::try_from(n), u64::try_from(n)) {
                (Ok(s), _) => json!(s),
                (_, Ok(u)) => json!(u),
                _ => json!(n.to_string()),
            }
        }
        Cbor::Float(f) => json!(f),
        Cbor::Text(t) => json!(t),
        Cbor::Bytes(b) => json!({ "/": { "bytes": BASE64.encode(b) } }),
        Cbor::Array(items) => Value::Array(items.iter().map(dag_json).collect()),
        Cbor::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = k.as_text().map_or_else(|| format!("{k:?}"), str::to_string);
                    (key, dag_json(v))
                })
                .collect(),
        ),
        Cbor::Tag(42, _) => match Cid::from_link(v) {
            Ok(cid) => json!({ "/": cid.to_string() }),
            Err(e) => json!({ "invalid link": e.to_string() }),
        },
        Cbor::Tag(tag, inner) => json!({ "tag": tag, "value": dag_json(inner) }),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Verify

/// `cix token verify`.
fn verify(at: Option<i64>, ucan_only: bool, paths: &[String], out: &mut Out) -> Result<()> {
    let at = at.unwrap_or_else(cix_node::access::now);
    let mut tokens = Vec::with_capacity(paths.len());
    for path in paths {
        tokens.push(read_token(path)?.bytes);
    }
    let Some((invocation, proofs)) = tokens.split_last() else {
        bail!("give at least one TOKEN: the invocation, after its delegations");
    };
    if Envelope::decode(invocation, MAX_TOKEN_BYTES)
        .is_ok_and(|e| matches!(e.tag(), DELEGATION_TAG | DELEGATION_TAG_RC1))
    {
        bail!(
            "the last TOKEN ({}) is a delegation: give the delegations root first and the \
             invocation last",
            paths.last().map_or("-", String::as_str)
        );
    }

    let spec = ucan::validate_spec(invocation, proofs, at);
    let full = spec.is_ok().then(|| ucan::validate(invocation, proofs, at));
    let mut v = json!({
        "type": "verdict",
        "at": time_json(Some(at)),
        "invocation": Cid::of_token(invocation).to_string(),
        "proofs": proofs.iter().map(|p| Cid::of_token(p).to_string()).collect::<Vec<_>>(),
        "ucan": spec.as_ref().map_or_else(|e| e.name(), |_| "valid"),
        "ucan_error": spec.as_ref().err().map(|e| e.to_string()),
        "profile": full.as_ref().map(|f| if f.is_ok() { "accepted" } else { "refused" }),
        "profile_error": full.as_ref().and_then(|f| f.as_ref().err()).map(|e| e.to_string()),
    });
    let accepted = if ucan_only {
        spec.is_ok()
    } else {
        matches!(full, Some(Ok(_)))
    };
    v["valid"] = json!(accepted);

    let mut lines = Vec::new();
    match &spec {
        Ok(ok) => lines.push(format!(
            "UCAN 1.0:    valid: {} on {} by {}, chain of {} delegation(s)",
            ok.invocation.cmd,
            ok.invocation.sub,
            ok.invocation.iss,
            ok.chain.len()
        )),
        Err(e) => lines.push(format!("UCAN 1.0:    {}: {e}", e.name())),
    }
    lines.push(match &full {
        None => "cix profile: not checked (the chain is not valid UCAN)".into(),
        Some(Ok(_)) => "cix profile: accepted".into(),
        Some(Err(e)) => format!("cix profile: refused: {e}"),
    });
    out.message(&v, &lines.join("\n"))?;
    if accepted {
        return Ok(());
    }
    match (&spec, &full) {
        (Err(e), _) => bail!("the invocation is refused: {}", e.name()),
        _ => bail!("the invocation is valid UCAN but the cix profile refuses it"),
    }
}

// ---------------------------------------------------------------------------------------------
// Node-backed commands

/// Prints a delegation the node issued or imported, and writes its chain when asked.
/// Makes sure `--out DIR` can take the chain's files: creates it and writes a probe file.
fn prepare_out(dir: Option<&std::path::Path>) -> Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "--out {}: cannot create that directory; nothing was issued",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".cix-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "--out {}: cannot write there; nothing was issued",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn issued(v: &Value, dir: Option<PathBuf>, out: &mut Out, verb: &str) -> Result<()> {
    let mut written = Vec::new();
    if let Some(dir) = dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let chain = v["chain"].as_array().cloned().unwrap_or_default();
        for (i, token) in chain.iter().enumerate() {
            let bytes = hex::decode(token.as_str().unwrap_or_default())
                .context("the node sent a token that is not hex")?;
            let path = dir.join(format!("{i:02}-{}.ucan", Cid::of_token(&bytes)));
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path.display().to_string());
        }
    }
    let mut line = v.clone();
    if let Some(o) = line.as_object_mut() {
        o.remove("chain");
        if !written.is_empty() {
            o.insert("files".into(), json!(written));
        }
    }
    let s = |k: &str| v[k].as_str().unwrap_or("-").to_string();
    let mut text = format!(
        "{verb} {} on dataset {} to {} until {}\n  delegation {}",
        s("command"),
        s("dataset"),
        s("audience"),
        expiry(&v["expires"]),
        s("cid")
    );
    if let Some(fields) = v["fields"].as_array() {
        let names: Vec<&str> = fields.iter().filter_map(Value::as_str).collect();
        text.push_str(&format!(
            "\n  fields limited to {} (ISO 37156 8.2.2 c)",
            names.join(", ")
        ));
    }
    if !written.is_empty() {
        text.push_str(&format!(
            "\n  chain written root first (hand these to the audience):\n    {}",
            written.join("\n    ")
        ));
    }
    out.message(&line, &text)
}

fn expiry(v: &Value) -> String {
    match v.as_i64() {
        None => "never".into(),
        Some(t) => time_json(Some(t))["utc"]
            .as_str()
            .map_or_else(|| t.to_string(), str::to_string),
    }
}

fn list(lines: &[Value], out: &mut Out) -> Result<()> {
    if out.is_json() {
        return lines.iter().try_for_each(|l| out.line(l));
    }
    if lines.is_empty() {
        return out.message(&Value::Null, "no delegations issued or received");
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(vec![
        "direction",
        "cid",
        "with",
        "command",
        "dataset",
        "expires",
        "state",
    ]);
    for l in lines {
        let s = |k: &str| l[k].as_str().unwrap_or("-").to_string();
        let with = if l["direction"] == "issued" {
            format!("to {}", s("audience"))
        } else {
            format!("from {}", s("issuer"))
        };
        t.add_row(vec![
            format!("{} ({})", s("direction"), s("source")),
            s("cid"),
            with,
            s("command"),
            s("dataset"),
            expiry(&l["expires"]),
            s("state"),
        ]);
    }
    out.message(&Value::Null, &t.to_string())
}
