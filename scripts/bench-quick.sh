#!/usr/bin/env bash
# The quick performance check of the test command: small runs of chatbox-load
# (tools/load) against the server and against the floor (bare tokio-tungstenite, the same
# socket settings) in the same sitting, failing when the server falls too far from the
# floor. Ratios only, never absolute times: the machine is shared and noisy, and the
# debug builds are slower than release in their own ways. Release numbers and how to
# make them: docs/benchmarks.md, "Load generator".
#
#   scripts/bench-quick.sh        build (debug) if needed, run, compare, print the numbers
#
# Environment:
#   CHATBOX_BIN, CHATBOX_LOAD_BIN     the binaries (default: target/debug/…, built here
#                                     unless CHATBOX_BIN is given and the tool exists)
#   BENCH_MAX_MEMORY_RATIO            server KiB per idle socket ÷ floor's (default 0.58;
#                                     0.46-0.50 today)
#   BENCH_MIN_FANOUT_RATIO            server fan-out frames/s ÷ floor's (default 0.2)
#   BENCH_MAX_CPU_RATIO               server CPU per fanned-out frame ÷ floor's (default 8;
#                                     about 3 in a debug build, 0.6 in release)
#   BENCH_OUT_DIR                     where the JSON results go (default target/bench-quick)
set -euo pipefail
cd "$(dirname "$0")/.."

server_name=bench-quick.sh
# shellcheck source=scripts/lib/local-server.sh
source scripts/lib/local-server.sh

max_memory_ratio="${BENCH_MAX_MEMORY_RATIO:-0.58}"
min_fanout_ratio="${BENCH_MIN_FANOUT_RATIO:-0.2}"
max_cpu_ratio="${BENCH_MAX_CPU_RATIO:-8}"
out="${BENCH_OUT_DIR:-target/bench-quick}"
mkdir -p "$out"

server="${CHATBOX_BIN:-target/debug/chatbox}"
load="${CHATBOX_LOAD_BIN:-target/debug/chatbox-load}"
if [[ -z "${CHATBOX_BIN:-}" || ! -x "$load" ]]; then
  # cargo build knows what is up to date: after `cargo test` this is quick.
  say "building the server and the load generator (debug)"
  cargo build --quiet -p chatbox -p chatbox-load
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits until something listens on 127.0.0.1:$1.
wait_listening() {
  local deadline=$((SECONDS + 60))
  until port_open "$1"; do
    ((SECONDS < deadline)) || die "nothing listens on 127.0.0.1:$1 after 60 s"
    sleep 0.1
  done
}

floor_port="$(pick_port)"
"$load" floor --port "$floor_port" >"$out/floor.log" 2>&1 &
floor_pid=$!
pids+=("$floor_pid")
wait_listening "$floor_port"
floor_url="ws://127.0.0.1:$floor_port/chat/ws"
"$load" idle --target floor --url "$floor_url" --pid "$floor_pid" --quick --out "$out/idle-floor.json"
"$load" fanout --target floor --url "$floor_url" --pid "$floor_pid" --quick --out "$out/fanout-floor.json"

server_port="$(pick_port)"
mock_port="$(pick_port)"
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
env_file="$out/server.env"
"$load" env --port "$server_port" --mock-port "$mock_port" --secret "$secret" >"$env_file"
(
  # Only the tool's environment (this secret, the mock provider, the memory store): none
  # of the test command's own (its MONGO_URI would put the server on MongoDB).
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  exec env -i PATH="$PATH" HOME="$HOME" bash -c 'set -a; source "$1"; set +a
    export STORAGE_BACKEND=memory HUB_BACKEND=memory UPLOAD_DIR="$2"
    exec "$3"' bench-quick "$env_file" "$out/uploads" "$server" >"$out/server.log" 2>&1
) &
server_pid=$!
pids+=("$server_pid")
wait_listening "$server_port"
server_url="ws://127.0.0.1:$server_port/chat/ws"
common=(--url "$server_url" --pid "$server_pid" --secret "$secret" --mock-port "$mock_port" --quick)
"$load" idle "${common[@]}" --out "$out/idle-chatbox.json"
"$load" fanout "${common[@]}" --out "$out/fanout-chatbox.json"
"$load" stream "${common[@]}" --out "$out/stream-chatbox.json"

python3 - "$out" "$max_memory_ratio" "$min_fanout_ratio" "$max_cpu_ratio" <<'PY'
import json, sys
out, max_memory, min_fanout, max_cpu = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
read = lambda name: json.load(open(f"{out}/{name}.json"))
idle_server, idle_floor = read("idle-chatbox"), read("idle-floor")
fan_server, fan_floor = read("fanout-chatbox"), read("fanout-floor")
stream = read("stream-chatbox")
cpu = fan_server["server_cpu_us_per_frame"] / fan_floor["server_cpu_us_per_frame"]
memory = idle_server["kib_per_socket_connected"] / idle_floor["kib_per_socket_connected"]
fanout = fan_server["frames_per_s"] / fan_floor["frames_per_s"]
print(f"bench-quick: idle socket {idle_server['kib_per_socket_connected']:.2f} KiB "
      f"(floor {idle_floor['kib_per_socket_connected']:.2f}): ratio {memory:.2f} (at most {max_memory})")
print(f"bench-quick: fan-out {fan_server['frames_per_s']:.0f} frames/s "
      f"(floor {fan_floor['frames_per_s']:.0f}): ratio {fanout:.2f} (at least {min_fanout})")
print(f"bench-quick: CPU per fanned-out frame {fan_server['server_cpu_us_per_frame']:.1f} µs "
      f"(floor {fan_floor['server_cpu_us_per_frame']:.1f}): ratio {cpu:.2f} (at most {max_cpu})")
lost = stream.get("tokens_lost", 0) + stream.get("tokens_out_of_order", 0) + stream.get("error_frames", 0)
print(f"bench-quick: stream: {stream['server_cpu']['us_per_token']} µs of server CPU per token, "
      f"{lost} tokens lost, reordered or errors")
failed = []
if memory > max_memory:
    failed.append(f"an idle socket costs {memory:.2f}× the floor's (at most {max_memory})")
if fanout < min_fanout:
    failed.append(f"fan-out reaches {fanout:.2f} of the floor's frames/s (at least {min_fanout})")
if cpu > max_cpu:
    failed.append(f"a fanned-out frame costs {cpu:.2f}× the floor's CPU (at most {max_cpu})")
if lost:
    failed.append(f"{lost} streamed tokens were lost, reordered or errors")
if failed:
    sys.exit("bench-quick: FAILED: " + "; ".join(failed))
PY
