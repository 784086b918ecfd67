//! The token commands, run as the real `cix` binary on real files: `cix token inspect` and
//! `cix token verify` offline, then `cix grant`, `cix tokens import|list` and `cix delegate`
//! against a running node.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use cix_protocol::identity::Keypair;
use cix_protocol::ucan::{self, Cid, Delegation, Invocation, Policy, CMD_FETCH, MAX_TOKEN_BYTES};
use serde_json::Value;

const CIX: &str = env!("CARGO_BIN_EXE_cix");
const WAIT: Duration = Duration::from_secs(30);
const NOW: i64 = 1_800_000_000;
const DATASET: &str = "00112233445566778899aabbccddeeff";

fn run(home: &Path, args: &[&str]) -> Output {
    Command::new(CIX)
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .expect("run cix")
}

/// Runs cix, expects `code`, returns (stdout, stderr).
fn expect(home: &Path, args: &[&str], code: i32) -> (String, String) {
    let out = run(home, args);
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "cix {args:?}: stdout {stdout}\nstderr {stderr}"
    );
    (stdout, stderr)
}

fn json_line(text: &str) -> Value {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected: {text}");
    serde_json::from_str(lines[0]).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// An owner's grant to a requester and the requester's fetch, both valid at [`NOW`].
struct Tokens {
    owner: Keypair,
    requester: Keypair,
    grant: Delegation,
    grant_bytes: Vec<u8>,
    grant_cid: Cid,
}

fn tokens() -> Tokens {
    let owner = Keypair::from_seed([1; 32]);
    let requester = Keypair::from_seed([2; 32]);
    let grant = Delegation {
        iss: owner.did(),
        aud: requester.did(),
        sub: Some(owner.did()),
        cmd: CMD_FETCH.into(),
        pol: Policy::dataset_equals(DATASET),
        nonce: vec![7; 16],
        exp: Some(NOW + 86_400),
        nbf: None,
        meta: None,
    };
    let (grant_bytes, grant_cid) = grant.seal(&owner).unwrap();
    Tokens {
        owner,
        requester,
        grant,
        grant_bytes,
        grant_cid,
    }
}

impl Tokens {
    fn fetch(&self, prf: Vec<Cid>, edit: impl FnOnce(&mut Invocation)) -> Vec<u8> {
        let mut inv = Invocation {
            iss: self.requester.did(),
            sub: self.owner.did(),
            aud: None,
            cmd: CMD_FETCH.into(),
            args: BTreeMap::from([("dataset".to_string(), DATASET.into())]),
            prf,
            exp: Some(NOW + 60),
            iat: Some(NOW),
            nonce: vec![9; 16],
            meta: None,
            cause: None,
        };
        edit(&mut inv);
        inv.seal(&self.requester).unwrap().0
    }
}

#[test]
fn inspect_reads_every_form_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&t.grant_bytes);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&t.grant_bytes);
    let forms = [
        (
            "raw DAG-CBOR",
            write(dir.path(), "raw.ucan", &t.grant_bytes),
        ),
        (
            "hex",
            write(dir.path(), "hex.txt", hex::encode(&t.grant_bytes) + "\n"),
        ),
        ("base64", write(dir.path(), "b64.txt", &b64)),
        ("base64url", write(dir.path(), "b64url.txt", &b64url)),
        (
            "DAG-JSON bytes",
            write(
                dir.path(),
                "dag.json",
                format!(r#"{{"/": {{"bytes": "{b64}"}}}}"#),
            ),
        ),
    ];
    for (form, path) in &forms {
        let (out, _) = expect(dir.path(), &["--json", "token", "inspect", path], 0);
        let v = json_line(&out);
        assert_eq!(v["read_as"], *form, "{path}");
        assert_eq!(v["type"], "token");
        assert_eq!(v["kind"], "delegation");
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["cid"], t.grant_cid.to_string());
        assert_eq!(v["issuer"], t.owner.did().to_string());
        assert_eq!(v["audience"], t.requester.did().to_string());
        assert_eq!(v["subject"], t.owner.did().to_string());
        assert_eq!(v["command"], CMD_FETCH);
        assert_eq!(
            v["policy"],
            serde_json::json!([["==", ".dataset", DATASET]])
        );
        assert_eq!(v["expires"]["unix"], NOW + 86_400);
        assert_eq!(v["expires"]["utc"], "2027-01-16T08:00:00Z");
        assert_eq!(v["nonce"], hex::encode([7; 16]));
        assert_eq!(v["signature"], "valid");
        assert_eq!(v["strict"], "ok");
    }

    // From stdin, and as text for people.
    let out = Command::new(CIX)
        .args(["token", "inspect", "-"])
        .stdin(std::fs::File::open(&forms[0].1).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("read as:     raw DAG-CBOR"), "{text}");
    assert!(text.contains("signature:   valid"), "{text}");
    assert!(text.contains(&t.grant_cid.to_string()), "{text}");

    // An invocation shows its args and proofs.
    let inv = write(dir.path(), "inv.ucan", t.fetch(vec![t.grant_cid], |_| {}));
    let v = json_line(&expect(dir.path(), &["--json", "token", "inspect", &inv], 0).0);
    assert_eq!(v["kind"], "invocation");
    assert_eq!(v["args"]["dataset"], DATASET);
    assert_eq!(v["proofs"], serde_json::json!([t.grant_cid.to_string()]));
    assert_eq!(v["issued_at"]["unix"], NOW);
}

#[test]
fn inspect_reports_a_bad_signature_and_refuses_what_is_not_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let mut forged = t.grant_bytes.clone();
    forged[10] ^= 1;
    let path = write(dir.path(), "forged.ucan", &forged);
    let v = json_line(&expect(dir.path(), &["--json", "token", "inspect", &path], 0).0);
    assert_eq!(v["signature"], "invalid");
    assert!(v["signature_error"].as_str().unwrap().contains("signature"));
    assert_ne!(v["strict"], "ok");

    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", Vec::new(), "empty"),
        ("binary", vec![0xff, 0x00, 0x12], "neither DAG-CBOR"),
        ("words", b"hello, world!".to_vec(), "not hex, base64"),
        ("json", br#"{"token": 1}"#.to_vec(), "DAG-JSON"),
        (
            "huge",
            vec![b'A'; MAX_TOKEN_BYTES * 3],
            "no UCAN token is that large",
        ),
    ];
    for (name, bytes, message) in cases {
        let path = write(dir.path(), name, bytes);
        let (_, err) = expect(dir.path(), &["token", "inspect", &path], 1);
        assert!(err.contains(message), "{name}: {err}");
    }
    let (_, err) = expect(dir.path(), &["token", "inspect", "/nonexistent/token"], 1);
    assert!(err.contains("cannot open token file"), "{err}");
    // A catalogue-style envelope with another tag is named as such.
    let other =
        cix_protocol::envelope::seal(&t.owner, "cix/entry@1", &BTreeMap::from([("a", 1)])).unwrap();
    let path = write(dir.path(), "entry.cbor", other);
    let (_, err) = expect(dir.path(), &["token", "inspect", &path], 1);
    assert!(err.contains("cix/entry@1"), "{err}");
    // A usage error is exit code 2.
    expect(dir.path(), &["token", "verify"], 2);
}

#[test]
fn verify_names_the_first_failure_and_the_layer_that_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = tokens();
    let grant = write(dir.path(), "0-grant.ucan", &t.grant_bytes);
    let fetch = write(
        dir.path(),
        "1-fetch.ucan",
        t.fetch(vec![t.grant_cid], |_| {}),
    );
    let at = NOW.to_string();

    let v = json_line(
        &expect(
            dir.path(),
            &["--json", "token", "verify", "--at", &at, &grant, &fetch],
            0,
        )
        .0,
    );
    assert_eq!(v["type"], "verdict");
    assert_eq!(
        (v["ucan"].as_str(), v["profile"].as_str()),
        (Some("valid"), Some("accepted"))
    );
    assert_eq!(v["valid"], true);
    let (text, _) = expect(
        dir.path(),
        &["token", "verify", "--at", &at, &grant, &fetch],
        0,
    );
    assert!(text.contains("UCAN 1.0:    valid"), "{text}");
    assert!(text.contains("cix profile: accepted"), "{text}");

    // Two days later the grant has expired: a UCAN failure, profile not reached.
    let later = (NOW + 2 * 86_400).to_string();
    let (out, err) = expect(
        dir.path(),
        &["--json", "token", "verify", "--at", &later, &grant, &fetch],
        1,
    );
    let v = json_line(&out);
    assert_eq!(v["ucan"], "Expired");
    assert!(v["profile"].is_null());
    assert!(err.contains("Expired"), "{err}");

    // Missing proof, and the invocation given before its delegation.
    let v = json_line(
        &expect(
            dir.path(),
            &["--json", "token", "verify", "--at", &at, &fetch],
            1,
        )
        .0,
    );
    assert_eq!(v["ucan"], "UnavailableProof");
    let (_, err) = expect(
        dir.path(),
        &["token", "verify", "--at", &at, &fetch, &grant],
        1,
    );
    assert!(err.contains("invocation last"), "{err}");

    // Valid UCAN that the cix profile refuses: an invocation valid for an hour.
    let long = write(
        dir.path(),
        "long.ucan",
        t.fetch(vec![t.grant_cid], |i| i.exp = Some(NOW + 3600)),
    );
    let (out, err) = expect(
        dir.path(),
        &["--json", "token", "verify", "--at", &at, &grant, &long],
        1,
    );
    let v = json_line(&out);
    assert_eq!(
        (v["ucan"].as_str(), v["profile"].as_str()),
        (Some("valid"), Some("refused"))
    );
    assert!(
        v["profile_error"]
            .as_str()
            .unwrap()
            .contains("more than 300 s"),
        "{v}"
    );
    assert!(err.contains("profile"), "{err}");
    expect(
        dir.path(),
        &["token", "verify", "--ucan-only", "--at", &at, &grant, &long],
        0,
    );

    // The policy holds: another dataset is a MatchError.
    let other = write(
        dir.path(),
        "other.ucan",
        t.fetch(vec![t.grant_cid], |i| {
            i.args
                .insert("dataset".into(), "ffffffffffffffffffffffffffffffff".into());
        }),
    );
    let v = json_line(
        &expect(
            dir.path(),
            &["--json", "token", "verify", "--at", &at, &grant, &other],
            1,
        )
        .0,
    );
    assert_eq!(v["ucan"], "MatchError");
    let _ = &t.grant;
}

fn fixture_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/ucan");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: fixture folder {} is absent", dir.display());
        None
    }
}

#[test]
fn verify_gives_every_fixture_case_its_expected_error() {
    let Some(fixtures) = fixture_dir() else {
        return;
    };
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("invocation.json")).unwrap())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (group, expected_default) in [("valid", "valid"), ("invalid", "")] {
        for (n, case) in file[group].as_array().unwrap().iter().enumerate() {
            let expected = case["error"]["name"].as_str().unwrap_or(expected_default);
            // The tokens exactly as the fixture writes them: DAG-JSON bytes, one file each.
            let mut paths = Vec::new();
            for (i, proof) in case["proofs"].as_array().unwrap().iter().enumerate() {
                paths.push(write(
                    dir.path(),
                    &format!("{group}{n}-p{i}.json"),
                    proof.to_string(),
                ));
            }
            paths.push(write(
                dir.path(),
                &format!("{group}{n}-inv.json"),
                case["invocation"].to_string(),
            ));
            let at = case["time"].as_i64().unwrap().to_string();
            let mut args = vec!["--json", "token", "verify", "--ucan-only", "--at", &at];
            args.extend(paths.iter().map(String::as_str));
            let code = if expected == "valid" { 0 } else { 1 };
            let v = json_line(&expect(dir.path(), &args, code).0);
            assert_eq!(v["ucan"], expected, "{}", case["name"]);
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

// ---------------------------------------------------------------------------------------------
// Against a running node

/// A running `cix node run`, killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(home: &Path) -> Daemon {
    let child = Command::new(CIX)
        .arg("--home")
        .arg(home)
        .args(["node", "run", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node");
    let daemon = Daemon(child);
    let start = Instant::now();
    while !home.join("node.json").exists() {
        assert!(start.elapsed() < WAIT, "timed out waiting for node.json");
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon
}

#[test]
fn grant_import_delegate_and_list_through_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("water");
    let init = json_line(&expect(&home, &["--json", "init", "--name", "Water Board"], 0).0);
    let node_did = init["did"].as_str().unwrap().to_string();
    let _node = start(&home);

    let csv = write(
        dir.path(),
        "mains.csv",
        "pipe,diameter_mm\nP1,300\nP2,150\n",
    );
    let dataset = expect(
        &home,
        &[
            "publish",
            &csv,
            "--title",
            "Mains",
            "--spectrum",
            "shared-named",
        ],
        0,
    )
    .0
    .trim()
    .to_string();
    let agency = Keypair::from_seed([5; 32]).did().to_string();

    // grant: the owner delegates directly; the chain is written for the audience.
    let out_dir = dir.path().join("grant");
    let (out, _) = expect(
        &home,
        &[
            "--json",
            "grant",
            &dataset[..8],
            "--to",
            &agency,
            "--days",
            "30",
            "--purpose",
            "flood model",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        0,
    );
    let g = json_line(&out);
    assert_eq!(g["direction"], "issued");
    assert_eq!(g["source"], "grant");
    assert_eq!(g["audience"], agency);
    assert_eq!(g["dataset"], dataset);
    assert_eq!(g["purpose"], "flood model");
    assert_eq!(g["command"], CMD_FETCH);
    assert_eq!(g["state"], "active");
    let files: Vec<String> = g["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files.len(), 1);
    let v = json_line(&expect(&home, &["--json", "token", "inspect", &files[0]], 0).0);
    assert_eq!(
        (v["cid"].clone(), v["signature"].as_str()),
        (g["cid"].clone(), Some("valid"))
    );
    assert_eq!(v["meta"]["purpose"], "flood model");

    // An --out that cannot be written is refused before anything is signed.
    let before = json_lines(&expect(&home, &["--json", "tokens", "list"], 0).0).len();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let (_, err) = expect(
        &home,
        &[
            "grant",
            &dataset[..8],
            "--to",
            &agency,
            "--out",
            blocker.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains("nothing was issued"), "{err}");
    let after = json_lines(&expect(&home, &["--json", "tokens", "list"], 0).0).len();
    assert_eq!(after, before, "a refused grant left a delegation behind");

    // grant refusals, each named.
    let (_, err) = expect(
        &home,
        &["grant", &dataset, "--to", "did:web:example.org"],
        1,
    );
    assert!(err.contains("not an ed25519 did:key"), "{err}");
    let (_, err) = expect(&home, &["grant", "ffffffff", "--to", &agency], 1);
    assert!(err.contains("no dataset"), "{err}");
    let (_, err) = expect(
        &home,
        &["grant", &dataset, "--to", &agency, "--days", "400"],
        1,
    );
    assert!(err.contains("--days"), "{err}");

    // import: a chain from another owner to this node, then delegate it on, attenuated.
    let owner = Keypair::from_seed([6; 32]);
    let received = Delegation {
        iss: owner.did(),
        aud: node_did.parse().unwrap(),
        sub: Some(owner.did()),
        cmd: "/cix/data".into(),
        pol: Policy::dataset_equals(DATASET),
        nonce: vec![1; 16],
        exp: Some(cix_node::access::now() + 10 * 86_400),
        nbf: None,
        meta: None,
    };
    let (received_bytes, received_cid) = received.seal(&owner).unwrap();
    let received_file = write(dir.path(), "received.ucan", &received_bytes);
    let imp = json_line(&expect(&home, &["--json", "tokens", "import", &received_file], 0).0);
    assert_eq!(imp["direction"], "received");
    assert_eq!(imp["cid"], received_cid.to_string());
    // Someone else's delegation cannot be imported.
    let stray = write(dir.path(), "stray.ucan", &tokens().grant_bytes);
    let (_, err) = expect(&home, &["tokens", "import", &stray], 1);
    assert!(err.contains("not to this node"), "{err}");

    let cid = received_cid.to_string();
    let (_, err) = expect(
        &home,
        &["delegate", &cid, "--to", &agency, "--command", "/cix/admin"],
        1,
    );
    assert!(err.contains("not covered"), "{err}");
    let chain_dir = dir.path().join("chain");
    let d = json_line(
        &expect(
            &home,
            &[
                "--json",
                "delegate",
                &cid[..20],
                "--to",
                &agency,
                "--command",
                CMD_FETCH,
                "--days",
                "365",
                "--out",
                chain_dir.to_str().unwrap(),
            ],
            0,
        )
        .0,
    );
    assert_eq!(d["source"], "delegate");
    assert_eq!(d["depth"], 2);
    assert_eq!(d["subject"], owner.did().to_string());
    assert!(
        d["expires"].as_i64().unwrap() <= received.exp.unwrap(),
        "never beyond the parent"
    );

    // The written chain, with an invocation by the agency, verifies offline.
    let mut chain: Vec<String> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let prf: Vec<Cid> = chain
        .iter()
        .map(|f| Cid::of_token(&std::fs::read(f).unwrap()))
        .collect();
    let holder = Keypair::from_seed([5; 32]);
    let now = cix_node::access::now();
    let inv = Invocation {
        iss: holder.did(),
        sub: owner.did(),
        aud: None,
        cmd: CMD_FETCH.into(),
        args: BTreeMap::from([("dataset".to_string(), DATASET.into())]),
        prf,
        exp: Some(now + 60),
        iat: Some(now),
        nonce: ucan::fresh_nonce(),
        meta: None,
        cause: None,
    };
    chain.push(write(dir.path(), "inv.ucan", inv.seal(&holder).unwrap().0));
    let mut args = vec!["--json", "token", "verify"];
    args.extend(chain.iter().map(String::as_str));
    let v = json_line(&expect(&home, &args, 0).0);
    assert_eq!(v["profile"], "accepted");

    // The list holds all three, and says which way each went.
    let list = json_lines(&expect(&home, &["--json", "tokens", "list"], 0).0);
    assert_eq!(list.len(), 3, "{list:?}");
    let find = |cid: &Value| list.iter().find(|l| l["cid"] == *cid).unwrap();
    assert_eq!(find(&g["cid"])["direction"], "issued");
    assert_eq!(find(&imp["cid"])["direction"], "received");
    assert_eq!(find(&d["cid"])["direction"], "issued");
    assert!(list.iter().all(|l| l.get("chain").is_none()));
    let (table, _) = expect(&home, &["tokens", "list"], 0);
    assert!(table.contains(&format!("from {}", owner.did())), "{table}");
}
