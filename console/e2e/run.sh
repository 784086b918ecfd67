#!/usr/bin/env bash
# End-to-end run of the web console (issue 11, specs/console.md). Two real nodes on 127.0.0.1
# port 0, each with its own home: Transport for London (tfl) publishes the London boroughs
# (open) and the Underground's lines (shared-named), both with their shapes; Thames Water
# (water), bootstrapped from tfl, publishes a network model. tfl gets an approver and a viewer
# account. Then console/e2e/console.mjs drives tfl's console in headless Chromium (Debian's
# /usr/bin/chromium, playwright-core from npm) through login, search, the map, the request
# queue (water's request approved in the browser, water's `cix fetch` completing), the audit
# log and the forgeries that must fail, with every non-loopback request aborted and counted.
# Screenshots of every page go to target/console-screenshots/.
#
# Needs target/debug/cix (cargo build -p cix, or cargo test --workspace), /usr/bin/chromium
# and `npm ci` in console/.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
cix="$target/debug/cix"
data="$repo/../shared/data/datasets"
[ -x "$cix" ] || { echo "console e2e: no $cix; build it first (cargo build -p cix)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "console e2e: no /usr/bin/chromium (apt-get install chromium)" >&2; exit 1; }
[ -d "$repo/console/node_modules/playwright-core" ] || { echo "console e2e: run npm ci in console/ first" >&2; exit 1; }
[ -d "$data" ] || { echo "console e2e: no $data (the shared data beside the repository)" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Polls a command until it succeeds, for at most $1 seconds; on timeout prints $2, the nodes'
# logs, and fails.
wait_for() {
  local secs="$1" what="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "console e2e: timed out after ${secs}s waiting for $what" >&2
      for log in "$work"/*.log; do echo "--- $log" >&2; tail -n 30 "$log" >&2; done
      exit 1
    fi
    sleep 0.2
  done
}

# Starts a node from home $1 (more flags after it) and waits for its node.json.
start() {
  local home="$1"; shift
  nice -n 19 "$cix" --home "$home" node run "$@" >"$home.log" 2>&1 &
  pids+=("$!")
  wait_for 30 "the node in $home to start" test -s "$home/node.json"
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v[0] if isinstance(v, list) else v)' "$1" "$2"; }
knows() { "$cix" --home "$1" --json catalogue list | grep -q "$2"; }
has_peer() { "$cix" --home "$1" --json peers | grep -q "$2"; }

tfl="$work/tfl" water="$work/water"
"$cix" --home "$tfl" init --name "Transport for London" --jurisdiction GB --sector transport --listen /ip4/127.0.0.1/tcp/0 >/dev/null
"$cix" --home "$water" init --name "Thames Water" --jurisdiction GB --sector water --listen /ip4/127.0.0.1/tcp/0 >/dev/null
start "$tfl"

cat >"$work/boroughs.toml" <<'EOF'
description = "The 33 London boroughs, as TopoJSON polygons"
keywords = ["boundaries", "boroughs", "london"]
data_type = "reference"
kind = "characteristic"
concept = "Place"
domain = "transport"
place = "London"
bbox = [-0.5104, 51.2868, 0.3340, 51.6919]
EOF
cat >"$work/tube.toml" <<'EOF'
description = "Routes of the London Underground lines, as TopoJSON line strings"
keywords = ["underground", "tube", "rail", "london"]
data_type = "reference"
kind = "characteristic"
concept = "Infrastructure"
domain = "transport"
place = "London"
bbox = [-0.6112, 51.4024, 0.2530, 51.7054]
EOF
cat >"$work/net.toml" <<'EOF'
description = "Hydraulic model of a distribution network (EPANET input file)"
keywords = ["network", "model", "epanet"]
domain = "water"
kind = "supply"
concept = "Infrastructure"
EOF
cp "$data/reference/londonBoroughs.json" "$data/transport/londonTubeLines.json" "$data/water/Net3.inp" "$work/"
boroughs="$("$cix" --home "$tfl" publish "$work/londonBoroughs.json" --title "London boroughs" --spectrum open --meta "$work/boroughs.toml" 2>/dev/null)"
tube="$("$cix" --home "$tfl" publish "$work/londonTubeLines.json" --title "London Underground lines" --spectrum shared-named --meta "$work/tube.toml" 2>/dev/null)"
printf 'ada approves 123\n' | "$cix" --home "$tfl" users add ada --role approver >/dev/null
printf 'vic only views 123\n' | "$cix" --home "$tfl" users add vic --role viewer >/dev/null

start "$water" --bootstrap "$(field "$tfl/node.json" listen)"
wait_for 30 "Thames Water to learn tfl's catalogue" knows "$water" "$tube"
network="$("$cix" --home "$water" publish "$work/Net3.inp" --title "Distribution network model" --spectrum open --meta "$work/net.toml" 2>/dev/null)"
wait_for 30 "tfl to learn Thames Water's entry" knows "$tfl" "$network"
wait_for 30 "tfl to know Thames Water's agency" has_peer "$tfl" "Thames Water"

export CIX_E2E_ADMIN="$(field "$tfl/node.json" admin_url)"
export CIX_E2E_CIX="$cix" CIX_E2E_REQUESTER="$water" CIX_E2E_WORK="$work"
export CIX_E2E_TUBE="$tube" CIX_E2E_TUBE_FILE="$work/londonTubeLines.json" CIX_E2E_BOROUGHS="$boroughs"
# Only this run's screenshots: none left over from an earlier run that stopped half-way.
rm -rf "$target/console-screenshots"
export CIX_E2E_SHOTS="$target/console-screenshots"
timeout 110 nice -n 19 node "$repo/console/e2e/console.mjs"
