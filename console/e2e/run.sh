#!/usr/bin/env bash
# End-to-end run of the web console: a real node (`cix node run` on 127.0.0.1 port 0) holding
# the London boroughs and Montreal districts, an approver account, then headless Chromium
# logs in and saves every page to target/console-screenshots/ (console/e2e/shots.mjs fails if
# the page attempted any outside request). Needs target/debug/cix, /usr/bin/chromium and
# `npm ci` in console/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cix="${CARGO_TARGET_DIR:-$repo/target}/debug/cix"
work="$(mktemp -d)"
export CIX_HOME="$work/home"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$cix" init --name "Greater London Authority" --jurisdiction GB --listen /ip4/127.0.0.1/tcp/0 >/dev/null
"$cix" node run >"$work/node.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -f "$CIX_HOME/node.json" ] && break; sleep 0.1; done
[ -f "$CIX_HOME/node.json" ] || { cat "$work/node.log"; echo "the node did not start"; exit 1; }
printf 'domain = "transport"\nkind = "characteristic"\ndescription = "Administrative boundaries"\n' >"$work/meta.toml"
ref="$repo/../shared/data/datasets/reference"
cp "$ref/londonBoroughs.json" "$ref/montreal-electoral-districts-2013.geojson" "$work/"
"$cix" publish "$work/londonBoroughs.json" --title "London boroughs" --spectrum open --meta "$work/meta.toml" >/dev/null
"$cix" publish "$work/montreal-electoral-districts-2013.geojson" --title "Montreal districts" --spectrum open --meta "$work/meta.toml" >/dev/null
printf 'ada password 123\n' | "$cix" users add ada --role approver >/dev/null
admin="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_url"])' "$CIX_HOME/node.json")"
node "$repo/console/e2e/shots.mjs" "$admin" ada 'ada password 123' "$repo/target/console-screenshots"
