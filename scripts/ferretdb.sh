#!/usr/bin/env bash
# A real MongoDB-compatible server for tests: FerretDB v1.24.2 with its SQLite backend,
# on loopback, built once from source into a cache directory.
#
#   scripts/ferretdb.sh start   build if needed, start (or reuse) the server, wait until it
#                               accepts connections, print MONGO_URI=… (and, when CI=true,
#                               CHATBOX_REQUIRE_MONGO=1) on standard output
#   scripts/ferretdb.sh stop    stop it (SIGTERM, then SIGKILL after a deadline)
#   scripts/ferretdb.sh uri     print MONGO_URI=… of the running server, fail if none
#   scripts/ferretdb.sh build   only build the binary; print its path
#   scripts/ferretdb.sh path    print the binary's path; fail if it is not built yet
#   scripts/ferretdb.sh data-dir  print the SQLite data directory
#
# Typical use (CI or a laptop):
#   eval "export $(scripts/ferretdb.sh start | tr '\n' ' ')"   # exports MONGO_URI (and CHATBOX_REQUIRE_MONGO in CI)
#   cargo test
#   scripts/ferretdb.sh stop
#
# Environment:
#   FERRETDB_PORT          port to listen on (default: a free port is picked)
#   FERRETDB_STATE_DIR     pid file, port file, log and data (default: <repo>/target/ferretdb,
#                          so every worktree has its own server); the data survives stop/start
#   FERRETDB_START_TIMEOUT seconds to wait for the server to accept connections (default 30)
#   CHATBOX_TOOLS_DIR      build cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools)
#
# Everything but the KEY=value lines goes to standard error, so standard output can be
# evaluated.
#
# Why build from source: `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`
# builds a binary that panics at start, because build/version/version.txt is generated
# in FerretDB's repository and not shipped in the Go module. So the module source is
# copied, the version file written, and the binary built from the copy.
set -euo pipefail

readonly VERSION="v1.24.2"
readonly MODULE="github.com/FerretDB/FerretDB"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CI runners and containers may start us without HOME; Go needs one too.
if [[ -z "${HOME:-}" ]]; then
  HOME="$(getent passwd "$(id -u)" 2>/dev/null | cut -d: -f6)"
  HOME="${HOME:-/tmp}"
  export HOME
fi
tools_dir="${CHATBOX_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools}"
build_dir="$tools_dir/ferretdb-$VERSION"
binary="$build_dir/ferretdb"
state_dir="${FERRETDB_STATE_DIR:-$repo_root/target/ferretdb}"
pid_file="$state_dir/ferretdb.pid"
port_file="$state_dir/ferretdb.port"
log_file="$state_dir/ferretdb.log"
data_dir="$state_dir/data"
start_timeout="${FERRETDB_START_TIMEOUT:-30}"

server_name=ferretdb.sh
# shellcheck source=scripts/lib/local-server.sh
source "$repo_root/scripts/lib/local-server.sh"

build() {
  if [[ -x "$binary" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build FerretDB $VERSION once (https://go.dev/dl/)"
  say "building FerretDB $VERSION into $build_dir (once; later starts reuse it)"
  local started=$SECONDS
  local json module_dir work
  json="$(go mod download -json "$MODULE@$VERSION")" || die "go mod download $MODULE@$VERSION failed"
  # The "Dir" field of go's JSON answer; parsed with sed so no JSON tool is needed.
  module_dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$module_dir" && -d "$module_dir" ]] || die "go mod download gave no module directory"
  mkdir -p "$tools_dir"
  work="$(mktemp -d "$tools_dir/ferretdb-build.XXXXXX")"
  # The module cache is read-only: build in a writable copy.
  cp -R "$module_dir/." "$work/src"
  chmod -R u+w "$work/src"
  mkdir -p "$work/src/build/version"
  printf '%s' "$VERSION" >"$work/src/build/version/version.txt"
  (cd "$work/src" && GOFLAGS=-buildvcs=false go build -o "$work/ferretdb" ./cmd/ferretdb) ||
    {
      rm -rf "$work"
      die "go build of FerretDB failed"
    }
  mkdir -p "$build_dir"
  # Atomic: a concurrent caller sees either no binary or a complete one.
  mv -f "$work/ferretdb" "$binary"
  rm -rf "$work"
  say "built $binary in $((SECONDS - started))s"
}

print_env() {
  printf 'MONGO_URI=mongodb://127.0.0.1:%s/\n' "$1"
  if [[ "${CI:-}" == "true" ]]; then
    printf 'CHATBOX_REQUIRE_MONGO=1\n'
  fi
}

start() {
  local pid port
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    port="$(cat "$port_file")"
    if [[ -n "${FERRETDB_PORT:-}" && "$FERRETDB_PORT" != "$port" ]]; then
      die "already running on port $port (pid $pid), not on FERRETDB_PORT=$FERRETDB_PORT; stop it first"
    fi
    say "already running on port $port (pid $pid)"
    print_env "$port"
    return 0
  fi
  build
  mkdir -p "$data_dir"
  # A picked port can still be taken by another process before FerretDB binds it: then
  # pick another (a port given in FERRETDB_PORT is tried once).
  local tries=5
  [[ -n "${FERRETDB_PORT:-}" ]] && tries=1
  while ! launch "${FERRETDB_PORT:-$(pick_port)}"; do
    tries=$((tries - 1))
    ((tries > 0)) || die "FerretDB exited during start-up (log: $log_file)"
    say "the port was taken meanwhile; trying another"
  done
}

# Starts FerretDB on $1 and waits until it accepts connections; false when it exited
# because the port was taken, fatal otherwise.
launch() {
  local port="$1" pid
  [[ "$port" =~ ^[0-9]+$ ]] || die "FERRETDB_PORT must be a number"
  if port_open "$port"; then
    [[ -z "${FERRETDB_PORT:-}" ]] && return 1
    die "port $port is already in use"
  fi
  local log_start=0
  [[ -f "$log_file" ]] && log_start=$(wc -l <"$log_file")
  # --debug-addr=- turns the debug HTTP listener off, --telemetry=disable keeps it from
  # calling home; the SQLite URL must name a directory (trailing slash).
  nohup "$binary" \
    --handler=sqlite \
    --sqlite-url="file:$data_dir/" \
    --listen-addr="127.0.0.1:$port" \
    --telemetry=disable \
    --debug-addr=- \
    --log-level=warn \
    --state-dir="$state_dir" \
    >>"$log_file" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$pid_file"
  printf '%s\n' "$port" >"$port_file"
  local deadline=$((SECONDS + start_timeout))
  until port_open "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      if tail -n +"$((log_start + 1))" "$log_file" | grep -q "address already in use"; then
        return 1
      fi
      tail -n 20 "$log_file" >&2 || true
      die "FerretDB exited during start-up (log: $log_file)"
    fi
    if ((SECONDS >= deadline)); then
      kill "$pid" 2>/dev/null || true
      rm -f "$pid_file"
      die "FerretDB did not accept connections on port $port within ${start_timeout}s (log: $log_file)"
    fi
    sleep 0.1
  done
  say "started on 127.0.0.1:$port (pid $pid, data $data_dir)"
  print_env "$port"
}

uri() {
  local pid
  pid="$(running_pid)"
  [[ -n "$pid" ]] || die "not running (start it with: $0 start)"
  print_env "$(cat "$port_file")"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  uri) uri ;;
  build)
    build
    printf '%s\n' "$binary"
    ;;
  path)
    [[ -x "$binary" ]] || die "FerretDB $VERSION is not built yet (run: $0 build)"
    printf '%s\n' "$binary"
    ;;
  data-dir) printf '%s\n' "$data_dir" ;;
  *)
    say "usage: $0 start|stop|uri|build|path|data-dir"
    exit 2
    ;;
esac
