#!/usr/bin/env bash
# The project's one test command (CI runs exactly this):
#   1. starts a real MongoDB-compatible server (FerretDB, built once from source, on
#      loopback) for the storage tests, and stops it at the end;
#   2. starts Debian's `redis-server` on loopback (scripts/redis.sh, installing the package
#      when it is missing and this runs as root) for the shared-state tests, and a
#      three-node Redis Cluster (scripts/redis-cluster.sh) that the Redis adapter's tests
#      run against a second time, after the workspace's;
#   3. starts an S3-compatible server (moto's, from PyPI, scripts/s3.sh) for the upload
#      store's tests; installs Debian's `prometheus` when it is missing and this runs as root (the
#      monitoring test starts it against the service; promtool checks the rules);
#   4. runs every Rust test: `cargo test --workspace`;
#   5. exercises the HTTP API of the built server against its OpenAPI document with
#      schemathesis (scripts/check-api.sh), drives the web pages in Debian's Chromium
#      with Playwright (scripts/browser-tests.sh, installing both on first use), and
#      checks the vendored browser scripts against their pinned npm packages;
#      runs the quick performance check (scripts/bench-quick.sh: small runs of the load
#      generator against the server and a bare tokio-tungstenite floor, ratios only);
#   6. checks the deployment artifacts (Kubernetes schemas, checkov, shellcheck, the
#      secret script, the Prometheus rules), installing its tools on first use;
#   7. mutation-tests the change to the rules crates (scripts/mutants.sh): a mutant of
#      the changed code in `domain` or `application` that their tests miss fails the run.
#
# Outside CI, a step whose tools cannot be had here (no Go for FerretDB) says so and its
# tests are skipped with a printed reason; in CI (CI=true) everything is required.
# Extra arguments go to cargo test, e.g. `scripts/test.sh -p chatbox --test e2e`.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=false
[[ "${CI:-}" == "true" ]] && ci=true
# Tool caches (Go's, FerretDB's build, the checkers' virtual environment) live under HOME.
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

server_name=test.sh
# shellcheck source=scripts/lib/local-server.sh
source scripts/lib/local-server.sh

# The test servers started here, stopped (last first) when this script exits.
started=()
stop_started() {
  local index
  for ((index = ${#started[@]} - 1; index >= 0; index--)); do
    "${started[index]}" stop || true
  done
}
trap stop_started EXIT

# Starts a test server with `$1 start` and exports the KEY=value lines it prints (its
# URL, and CHATBOX_REQUIRE_…=1 in CI); $2 names the tests that need it. A server that
# does not start fails the run in CI and is reported elsewhere.
start_server() {
  local script="$1" tests="$2" env line
  if env="$("$script" start)"; then
    while IFS= read -r line; do
      [[ "$line" == *=* ]] && export "${line?}"
    done <<<"$env"
    started+=("$script")
  elif $ci; then
    echo "$script did not start, and CI requires the $tests tests" >&2
    exit 1
  else
    echo "$script did not start: the $tests tests will say they were skipped" >&2
    return 1
  fi
}

echo "== MongoDB-compatible server (FerretDB)"
if start_server scripts/ferretdb.sh MongoDB; then
  echo "MongoDB tests run against ${MONGO_URI%%\?*}"
fi

echo "== Redis (state shared between replicas)"
if start_server scripts/redis.sh Redis; then
  echo "Redis tests run against $REDIS_URL"
fi

echo "== Redis Cluster (the Redis adapter's tests run against it too)"
redis_cluster=false
if start_server scripts/redis-cluster.sh "Redis Cluster"; then
  redis_cluster=true
  echo "Redis Cluster tests run against $REDIS_CLUSTER_URL"
fi

echo "== S3-compatible object storage (moto's server, for the upload store's tests)"
if start_server scripts/s3.sh "object storage"; then
  echo "S3 tests run against $S3_ENDPOINT"
fi

echo "== Prometheus (the monitoring rules and dashboard are checked with it)"
if install_package prometheus prometheus && install_package prometheus promtool; then
  prometheus --version 2>&1 | head -1
  $ci && export CHATBOX_REQUIRE_PROMETHEUS=1
elif $ci; then
  echo "prometheus is not installed, and CI requires the monitoring checks" >&2
  exit 1
else
  echo "no prometheus here (apt-get install prometheus): the monitoring checks will say they were skipped" >&2
fi

echo "== cargo test --workspace"
cargo test --workspace "$@"

if [[ $# -eq 0 ]] && $redis_cluster; then
  echo "== the Redis adapter's tests against a Redis Cluster"
  # --workspace, not -p: the same features as the run above, so nothing is rebuilt.
  REDIS_URL="$REDIS_CLUSTER_URL" cargo test --workspace \
    --test follow --test lease --test limiter --test sockets --test stream
fi

if [[ $# -eq 0 ]]; then
  echo "== HTTP API against its OpenAPI document"
  scripts/check-api.sh
  echo "== the web pages in Chromium"
  CHATBOX_BIN="$PWD/target/debug/chatbox" scripts/browser-tests.sh
  echo "== the vendored browser scripts match their pinned packages"
  scripts/vendor-ui.sh --check
  echo "== quick performance check against the floor (chatbox-load)"
  scripts/bench-quick.sh
  echo "== deployment artifacts"
  scripts/check-deployments.sh
  echo "== mutation testing of the change (domain, application)"
  scripts/mutants.sh
fi
