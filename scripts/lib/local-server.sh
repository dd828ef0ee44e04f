# shellcheck shell=bash disable=SC2154 # server_name and pid_file are set by the sourcing script
# Sourced by the scripts that run a test server on loopback (scripts/ferretdb.sh,
# scripts/redis.sh) and by the test command: messages, the server's pid file, a port
# picked below the ephemeral range, a stop that waits for the exit, and Debian packages
# installed when missing.
#
# The sourcing script sets `server_name` (the prefix of its messages) and, for the pid
# functions, `pid_file`.

say() { printf '%s: %s\n' "$server_name" "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid of our running server, or nothing.
running_pid() {
  [[ -f "$pid_file" ]] || return 0
  local pid
  pid="$(cat "$pid_file")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    printf '%s\n' "$pid"
  fi
}

# A free port below the kernel's ephemeral range, so no outgoing connection (a test's
# client socket) can take it between this pick and the server's bind.
pick_port() {
  local low=32768 port attempt
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  ((low > 11000)) || die "the ephemeral port range starts too low ($low) to pick a port below it"
  for attempt in $(seq 1 50); do
    port=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
    if ! port_open "$port"; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "no free port found after $attempt tries"
}

# Stops the server of `pid_file`: SIGTERM, then SIGKILL after 10 s.
stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$pid_file"
    say "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "did not stop within 10s; killing pid $pid"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pid_file"
  say "stopped (pid $pid)"
}

# Installs Debian's package $1 when its command $2 is missing and this runs as root with
# apt-get; true when the command is there afterwards.
install_package() {
  local package="$1" command="$2"
  command -v "$command" >/dev/null 2>&1 && return 0
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's $package package"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  fi
  command -v "$command" >/dev/null 2>&1
}
