#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/TARGET/) from real encodings.

Sources: the protocol's test vectors in specs/vectors/ (real canonical CBOR of every wire
message, envelope, token, chain, audit record and receipt, valid and refused), the UCAN
working group fixtures and the open data in ../shared (catalogues, NGSI-LD entities, CSV
datasets), cut down so that each target's seeds stay within a few KB. Run from anywhere:
    python3 fuzz/seeds.py
It replaces the seeds/ directory; the output is deterministic."""

import base64
import glob
import hashlib
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(HERE, "seeds")
BUDGET = 12 * 1024  # bytes of seeds per target
PIECE = 4 * 1024  # largest single seed

corpora = {}


def add(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > PIECE:
        return
    seeds = corpora.setdefault(target, {})
    if sum(len(d) for d in seeds.values()) + len(data) > BUDGET:
        return
    seeds[hashlib.sha1(data).hexdigest()[:16]] = data


def vectors(name):
    with open(os.path.join(ROOT, "specs", "vectors", name)) as f:
        return json.load(f)


def hexes(node, keys):
    """Every hex string under one of `keys`, depth first."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in keys and isinstance(v, str):
                try:
                    yield bytes.fromhex(v)
                except ValueError:
                    pass
            else:
                yield from hexes(v, keys)
    elif isinstance(node, list):
        for v in node:
            yield from hexes(v, keys)


def framed(pieces):
    return b"".join(struct.pack(">H", len(p)) + p for p in pieces)


# Wire messages, plain and framed.
for name in ["wire.json", "sync.json"]:
    for b in hexes(vectors(name), {"cbor", "framed"}):
        add("wire", b)
for b in hexes(vectors("audit.json"), {"witness_request_head", "witness_request_held",
                                      "witness_response_witnessed"}):
    add("wire", b)
for b in hexes(vectors("revocations.json"), {"sync_request"}):
    add("wire", b)
for b in hexes(vectors("withdrawals.json"), {"sync_ids_request", "sync_want_request",
                                            "sync_ids_response"}):
    add("wire", b)

# Catalogue entries: the valid ones first, then each refused variant.
for b in hexes(vectors("entries.json"), {"envelope"}):
    add("entry", b)
    add("cbor_envelope", b)

# Withdrawals, revocations (and the profiles and attestations inside receipts' vectors).
for name in ["withdrawals.json", "revocations.json"]:
    for b in hexes(vectors(name), {"envelope"}):
        add("signed_records", b)
        add("cbor_envelope", b)

# Audit records, heads, witnesses and exported logs.
for b in hexes(vectors("audit.json"), {"envelope", "head", "witness", "export"}):
    add("audit", b)

# Receipts, acknowledgements, deletion notices, bundles.
for v in vectors("receipts.json")["vectors"]:
    b = bytes.fromhex(v["bytes"])
    add("receipt", b)
    if "profile" in v["kind"]:
        add("signed_records", b)

# Tokens and chains.
tokens = vectors("tokens.json")
for t in tokens["tokens"]:
    add("ucan_token", bytes.fromhex(t["token"]))
for c in tokens["chains"]:
    inv = bytes.fromhex(c["invocation"])
    proofs = [bytes.fromhex(p) for p in c["proofs"]]
    add("ucan_chain", framed([inv] + proofs))
    add("ucan_token", inv)
for name in ["delegation.json", "invocation.json"]:
    with open(os.path.join(SHARED, "fixtures", "ucan", name)) as f:
        fixture = json.load(f)
    for group in ("valid", "invalid"):
        for case in fixture.get(group, [])[:3]:
            tok = case.get("token")
            if isinstance(tok, str):
                add("ucan_token", base64.b64decode(tok))
for text in [".", ".dataset", ".fields[0]", ".a.b[-1]", '.["key"]', "*.csv", "cix/*", "did:key:z6Mk"]:
    add("ucan_token", text)

# Dictionaries: the first lines of real CSV datasets.
for path in sorted(glob.glob(os.path.join(SHARED, "data", "datasets", "*", "*.csv")))[:6]:
    with open(path, "rb") as f:
        head = f.read(1500)
    add("dictionary", head[: head.rfind(b"\n") + 1])
for path in sorted(glob.glob(os.path.join(SHARED, "data", "datasets", "*", "*.json")))[:2]:
    with open(path, "rb") as f:
        add("dictionary", f.read(PIECE))

# Imported catalogues: a slice of the Turtle catalogue cut at a statement's end, a small
# DCAT-AP JSON-LD catalogue and RDF/XML written here, NGSI-LD entities, and two datasets of
# the data.json catalogue.
with open(os.path.join(SHARED, "data", "catalogues", "dcat-ap-es-example-catalog.ttl"), "rb") as f:
    ttl = f.read()
cut = ttl.find(b" .\n", 2500)
add("import_rdf", ttl[: cut + 3])
add("import_rdf", """{
  "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/"},
  "@graph": [
    {"@id": "https://example.org/catalogue", "@type": "dcat:Catalog",
     "dcat:dataset": {"@id": "https://example.org/ds/flow"}},
    {"@id": "https://example.org/ds/flow", "@type": "dcat:Dataset",
     "dct:title": {"@value": "River flow at the weir", "@language": "en"},
     "dct:description": "Fifteen-minute flow readings.",
     "dcat:keyword": ["water", "flow"],
     "dcat:distribution": {"@id": "https://example.org/ds/flow/csv"}},
    {"@id": "https://example.org/ds/flow/csv", "@type": "dcat:Distribution",
     "dcat:downloadURL": {"@id": "https://example.org/flow.csv"},
     "dcat:mediaType": "text/csv"}
  ]
}""")
add("import_rdf", """<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dcat="http://www.w3.org/ns/dcat#" xmlns:dct="http://purl.org/dc/terms/">
  <dcat:Dataset rdf:about="https://example.org/ds/pressure">
    <dct:title xml:lang="en">Mains pressure</dct:title>
    <dcat:keyword>water</dcat:keyword>
  </dcat:Dataset>
</rdf:RDF>""")
# The NGSI-LD files themselves are not copied here (../shared/data keeps them, SOURCES.md):
# run.sh passes ../shared/data/ngsi-ld to import_json and import_rdf as a second seed directory.
with open(os.path.join(SHARED, "data", "catalogues", "data.seattle.gov-data.json")) as f:
    pod = json.load(f)
records = pod["dataset"] if isinstance(pod, dict) else pod
small = [d for d in records if len(json.dumps(d)) < 1500][:2]
add("import_json", json.dumps(small, indent=1))
if isinstance(pod, dict):
    add("import_json", json.dumps(dict(pod, dataset=small[:1]), indent=1))
add("import_json", json.dumps({"cix_drafts": 1, "drafts": [], "skipped": []}))

# Config and mapping files.
add("config", """name = "Waterschap Rivierenland"
jurisdiction = "NL"
sectors = ["water"]
contact = "data@example.org"
listen = ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"]
tcp_security = "noise"
bootstrap = []
admin_listen = "127.0.0.1:7878"
store_cache_bytes = 16777216
grant_days = 30
audit_witness_secs = 300
""")
add("config", """name = "City of Seattle"
jurisdiction = "US"
trusted_registrars = ["did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"]
retention_day_secs = 86400

[privacy]
controller = "City of Seattle"
purposes = ["service delivery"]
""")
add("config", """[defaults]
level = "open"
data_type = "metadata"
jurisdiction = "NL"

[[rules]]
theme = "water"
[rules.set]
domain = "water"
""")

shutil.rmtree(OUT, ignore_errors=True)
for target, seeds in sorted(corpora.items()):
    os.makedirs(os.path.join(OUT, target))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(OUT, target, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")
