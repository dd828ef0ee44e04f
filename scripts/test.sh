#!/usr/bin/env bash
# The project's one test command (CI runs exactly this):
#   1. starts a real MongoDB-compatible server (FerretDB, built once from source, on
#      loopback) for the storage tests, and stops it at the end;
#   2. starts Debian's `redis-server` on loopback (scripts/redis.sh, installing the package
#      when it is missing and this runs as root) for the shared-state tests;
#   3. installs Debian's `prometheus` when it is missing and this runs as root (the
#      monitoring test starts it against the service; promtool checks the rules);
#   4. runs every Rust test: `cargo test --workspace`;
#   5. exercises the HTTP API of the built server against its OpenAPI document with
#      schemathesis (scripts/check-api.sh);
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

echo "== MongoDB-compatible server (FerretDB)"
if [[ -x scripts/ferretdb.sh ]]; then
  if mongo_env="$(scripts/ferretdb.sh start)"; then
    # KEY=value lines: MONGO_URI, and CHATBOX_REQUIRE_MONGO=1 in CI.
    while IFS= read -r line; do
      [[ "$line" == *=* ]] && export "${line?}"
    done <<<"$mongo_env"
    trap 'scripts/ferretdb.sh stop || true' EXIT
    echo "MongoDB tests run against ${MONGO_URI%%\?*}"
  elif $ci; then
    echo "FerretDB did not start, and CI requires the MongoDB tests" >&2
    exit 1
  else
    echo "FerretDB did not start: the MongoDB tests will say they were skipped" >&2
  fi
fi

echo "== Redis (state shared between replicas)"
if redis_env="$(scripts/redis.sh start)"; then
  # KEY=value lines: REDIS_URL, and CHATBOX_REQUIRE_REDIS=1 in CI.
  while IFS= read -r line; do
    [[ "$line" == *=* ]] && export "${line?}"
  done <<<"$redis_env"
  trap 'scripts/redis.sh stop || true; scripts/ferretdb.sh stop || true' EXIT
  echo "Redis tests run against $REDIS_URL"
elif $ci; then
  echo "Redis did not start, and CI requires the Redis tests" >&2
  exit 1
else
  echo "Redis did not start: the Redis tests will say they were skipped" >&2
fi

echo "== Prometheus (the monitoring rules and dashboard are checked with it)"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's prometheus package"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
fi
if command -v prometheus >/dev/null 2>&1; then
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

if [[ $# -eq 0 ]]; then
  echo "== HTTP API against its OpenAPI document"
  scripts/check-api.sh
  echo "== deployment artifacts"
  scripts/check-deployments.sh
  echo "== mutation testing of the change (domain, application)"
  scripts/mutants.sh
fi
