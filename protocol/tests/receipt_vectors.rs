//! `specs/vectors/receipts.json` is exactly what its generator writes, and each case's verdict
//! is what the decoders say (ISO 37156 8.3.4 receipts, 8.2.2 e deletion notices).

#![allow(clippy::unwrap_used)]

#[path = "../examples/receipt_vectors.rs"]
mod generator;

fn committed() -> String {
    std::fs::read_to_string(generator::path()).unwrap_or_else(|e| {
        panic!("{e}: run `cargo run -p cix-protocol --example receipt_vectors`")
    })
}

#[test]
fn committed_receipt_vectors_are_what_the_generator_writes() {
    assert!(
        committed() == generator::generate(),
        "specs/vectors/receipts.json is stale: run `cargo run -p cix-protocol --example \
         receipt_vectors` and review the diff"
    );
}

#[test]
fn every_committed_case_gets_its_stated_verdict_and_id() {
    let file: serde_json::Value = serde_json::from_str(&committed()).unwrap();
    let cases = file["vectors"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let bytes = hex::decode(c["bytes"].as_str().unwrap()).unwrap();
        let (verdict, id) = generator::verdict(c["kind"].as_str().unwrap(), &bytes);
        assert_eq!(verdict, c["verdict"].as_str().unwrap(), "{name}");
        assert_eq!(id.map(hex::encode).as_deref(), c["id"].as_str(), "{name}");
        if let Some(id) = c["id"].as_str() {
            assert_eq!(
                id,
                blake3::hash(&bytes).to_hex().as_str(),
                "{name}: id is BLAKE3"
            );
        }
    }
}
