#!/usr/bin/env bash
# The project's one test command (CI runs exactly this):
#   1. starts a real MongoDB-compatible server (FerretDB, built once from source, on
#      loopback) for the storage tests, and stops it at the end;
#   2. runs every Rust test: `cargo test --workspace`;
#   3. exercises the HTTP API of the built server against its OpenAPI document with
#      schemathesis (scripts/check-api.sh);
#   4. checks the deployment artifacts (Kubernetes schemas, checkov, shellcheck, the
#      secret script), installing its tools on first use.
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

echo "== cargo test --workspace"
cargo test --workspace "$@"

if [[ $# -eq 0 ]]; then
  echo "== HTTP API against its OpenAPI document"
  scripts/check-api.sh
  echo "== deployment artifacts"
  scripts/check-deployments.sh
fi
