#!/usr/bin/env bash
# A real Redis Cluster for tests: three Debian `redis-server` primaries in cluster mode
# on loopback, no persistence, the slots split between them by `redis-cli --cluster
# create`.
#
#   scripts/redis-cluster.sh start   install the package if it is missing and this runs
#                                    as root, start (or reuse) the nodes, wait until the
#                                    cluster is ok, print REDIS_CLUSTER_URL=… on standard
#                                    output
#   scripts/redis-cluster.sh stop    stop every node
#
# Environment:
#   REDIS_CLUSTER_STATE_DIR  pid, port and node files and logs (default:
#                            <repo>/target/redis-cluster)
#
# Everything but the KEY=value line goes to standard error.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${REDIS_CLUSTER_STATE_DIR:-$repo_root/target/redis-cluster}"
nodes=3

server_name=redis-cluster.sh
# shellcheck source=scripts/lib/local-server.sh
source "$repo_root/scripts/lib/local-server.sh"

answers() {
  redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG
}

cluster_ok() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | grep -q "cluster_state:ok"
}

ports() {
  local node
  for node in $(seq 1 "$nodes"); do
    if [[ -f "$state_dir/node-$node.port" ]]; then cat "$state_dir/node-$node.port"; fi
  done
}

print_env() {
  local hosts
  hosts="$(ports | sed 's/^/127.0.0.1:/' | paste -sd, -)"
  echo "REDIS_CLUSTER_URL=redis+cluster://$hosts/"
}

# A free port whose cluster bus port (the port + 10000, which Redis Cluster also binds)
# is free too and below the kernel's ephemeral range, where a client socket could take it.
pick_cluster_port() {
  local low=32768 port attempt
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  for attempt in $(seq 1 50); do
    port="$(pick_port)"
    if ((port + 10000 < low)) && ! port_open "$((port + 10000))"; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  die "no free pair of ports (a node's and its cluster bus's) after $attempt attempts"
}

start() {
  install_package redis-server redis-server || die "redis-server is not installed (apt-get install redis-server)"
  install_package redis-tools redis-cli || die "redis-cli is not installed (apt-get install redis-tools)"
  mkdir -p "$state_dir"
  local first
  first="$(ports | sed -n 1p)"
  if [[ -n "$first" ]] && cluster_ok "$first"; then
    say "already running"
    print_env
    return 0
  fi
  stop_all
  local node port addresses=()
  for node in $(seq 1 "$nodes"); do
    port="$(pick_cluster_port)"
    echo "$port" >"$state_dir/node-$node.port"
    rm -f "$state_dir/nodes-$port.conf"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 2000 \
      --daemonize yes --pidfile "$state_dir/node-$node.pid" --logfile "$state_dir/node-$node.log" \
      --dir "$state_dir" >/dev/null
    addresses+=("127.0.0.1:$port")
  done
  local deadline=$((SECONDS + 20))
  for port in $(ports); do
    until answers "$port"; do
      ((SECONDS < deadline)) || die "no answer on 127.0.0.1:$port within 20 s; see $state_dir"
      sleep 0.1
    done
  done
  redis-cli --cluster create "${addresses[@]}" --cluster-yes >"$state_dir/create.log" 2>&1 ||
    die "the cluster was not formed; see $state_dir/create.log"
  for port in $(ports); do
    until cluster_ok "$port"; do
      ((SECONDS < deadline + 20)) || die "the cluster is not ok on 127.0.0.1:$port; see $state_dir"
      sleep 0.1
    done
  done
  say "started on $(ports | paste -sd' ' -)"
  print_env
}

stop_all() {
  local node
  for node in $(seq 1 "$nodes"); do
    pid_file="$state_dir/node-$node.pid"
    stop
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop_all ;;
  *) die "usage: scripts/redis-cluster.sh start|stop" ;;
esac
