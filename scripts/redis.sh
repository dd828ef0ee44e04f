#!/usr/bin/env bash
# A real Redis for tests: Debian's `redis-server` on loopback, no persistence.
#
#   scripts/redis.sh start   install the package if it is missing and this runs as root,
#                            start (or reuse) the server, wait until it answers PING, print
#                            REDIS_URL=… (and, when CI=true, CHATBOX_REQUIRE_REDIS=1) on
#                            standard output
#   scripts/redis.sh stop    stop it (SIGTERM, then SIGKILL after a deadline)
#   scripts/redis.sh url     print REDIS_URL=… of the running server, fail if none
#
# Environment:
#   REDIS_PORT         port to listen on (default: a free port is picked)
#   REDIS_STATE_DIR    pid file, port file and log (default: <repo>/target/redis, so every
#                      worktree has its own server)
#
# Everything but the KEY=value lines goes to standard error, so standard output can be
# evaluated.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${REDIS_STATE_DIR:-$repo_root/target/redis}"
pid_file="$state_dir/redis.pid"
port_file="$state_dir/redis.port"
log_file="$state_dir/redis.log"

server_name=redis.sh
# shellcheck source=scripts/lib/local-server.sh
source "$repo_root/scripts/lib/local-server.sh"

answers() {
  redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG
}

print_env() {
  echo "REDIS_URL=redis://127.0.0.1:$(cat "$port_file")/"
  if [[ "${CI:-}" == "true" ]]; then echo "CHATBOX_REQUIRE_REDIS=1"; fi
}

start() {
  install_package redis-server redis-server || die "redis-server is not installed (apt-get install redis-server)"
  mkdir -p "$state_dir"
  if [[ -n "$(running_pid)" ]] && answers "$(cat "$port_file")"; then
    say "already running on 127.0.0.1:$(cat "$port_file")"
    print_env
    return 0
  fi
  local port="${REDIS_PORT:-$(pick_port)}"
  echo "$port" >"$port_file"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --daemonize yes --pidfile "$pid_file" --logfile "$log_file" --dir "$state_dir" >/dev/null
  local deadline=$((SECONDS + 20))
  until answers "$port"; do
    ((SECONDS < deadline)) || die "no answer on 127.0.0.1:$port within 20 s; see $log_file"
    sleep 0.1
  done
  say "started on 127.0.0.1:$port (pid $(cat "$pid_file"))"
  print_env
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url)
    [[ -n "$(running_pid)" ]] || die "not running"
    print_env
    ;;
  *) die "usage: scripts/redis.sh start|stop|url" ;;
esac
