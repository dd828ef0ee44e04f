#!/usr/bin/env bash
# The server's user-space instructions per streamed token, counted by valgrind's
# callgrind: 20 answers streaming at once from the load generator's mock provider (40
# tokens at 20/s each) for 20 s, counted from the first answer to the last. Unlike CPU
# time, which moves by ±10 % between runs of one binary on this shared machine, the count
# repeats within about 2 %, so it shows changes too small for the timed runs (the kernel's
# share, about half the CPU per token, is not in it). docs/benchmarks.md, "Round 6".
#
#   scripts/bench-instructions.sh [label]     prints "<label>: N instructions per token"
#
# Environment:
#   CHATBOX_BIN, CHATBOX_LOAD_BIN   the binaries (default: target/release/…, built here
#                                   unless CHATBOX_BIN is given and the tool exists)
#   BENCH_OUT_DIR                   where the results go (default target/bench-instructions):
#                                   the tool's JSON and callgrind's profile, for
#                                   `callgrind_annotate --inclusive=yes`
#   _RJEM_MALLOC_CONF               passed to the server (allocator settings to compare)
set -euo pipefail
cd "$(dirname "$0")/.."

server_name=bench-instructions.sh
# shellcheck source=scripts/lib/local-server.sh
source scripts/lib/local-server.sh

label="${1:-run}"
out="${BENCH_OUT_DIR:-target/bench-instructions}"
mkdir -p "$out"
install_package valgrind valgrind || die "valgrind is needed (Debian's valgrind package)"

server="${CHATBOX_BIN:-target/release/chatbox}"
load="${CHATBOX_LOAD_BIN:-target/release/chatbox-load}"
if [[ -z "${CHATBOX_BIN:-}" || ! -x "$load" ]]; then
  say "building the server and the load generator (release)"
  # One at a time: built together, cargo unifies their features and the server is
  # another binary than the one the benchmarks measure (docs/benchmarks.md, round 7).
  cargo build --quiet --release -p chatbox
  cargo build --quiet --release -p chatbox-load
fi

server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}
trap cleanup EXIT

server_port="$(pick_port)"
mock_port="$(pick_port)"
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
env_file="$out/server.env"
"$load" env --port "$server_port" --mock-port "$mock_port" --secret "$secret" >"$env_file"
profile="$out/callgrind-$label"
rm -f "$profile" "$profile".*
(
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  exec env -i PATH="$PATH" HOME="$HOME" ${_RJEM_MALLOC_CONF:+_RJEM_MALLOC_CONF="$_RJEM_MALLOC_CONF"} \
    bash -c 'set -a; source "$1"; set +a
    export STORAGE_BACKEND=memory HUB_BACKEND=memory UPLOAD_DIR="$2"
    exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$3" "$4"' \
    bench-instructions "$env_file" "$out/uploads" "$profile" "$server" >"$out/server.log" 2>&1
) &
server_pid=$!
deadline=$((SECONDS + 120))
until port_open "$server_port"; do
  ((SECONDS < deadline)) || die "the server under valgrind does not listen after 120 s (see $out/server.log)"
  sleep 0.2
done

# Counting starts here: startup and the upgrade of the sockets are not in it.
callgrind_control --instr=on "$server_pid" >/dev/null 2>&1
"$load" stream --url "ws://127.0.0.1:$server_port/chat/ws" --pid "$server_pid" --secret "$secret" \
  --mock-port "$mock_port" --concurrency 20 --tokens 40 --rate 20 --duration 20 --direct 1 \
  --label "$label" --out "$out/stream-$label.json" >"$out/stream-$label.txt"
callgrind_control --dump "$server_pid" >/dev/null 2>&1

# The profile of the first (and only) dump asked for: the one that ends at the last answer.
dump="$profile.1"
[[ -f "$dump" ]] || die "callgrind wrote no profile at $dump (see $out/server.log)"
python3 - "$dump" "$out/stream-$label.json" "$label" <<'PY'
import json, sys
dump, results, label = sys.argv[1:]
instructions = next(int(line.split()[1]) for line in open(dump) if line.startswith("summary:"))
run = json.load(open(results))
tokens = run["tokens_delivered"]
if tokens == 0 or run["tokens_lost"] or run["error_frames"]:
    sys.exit(f"bench-instructions.sh: the run was not clean: {tokens} tokens, {run['tokens_lost']} lost, {run['error_frames']} error frames")
print(f"{label}: {instructions / tokens:,.0f} instructions per token ({instructions:,} for {tokens:,} tokens; profile {dump})")
PY
