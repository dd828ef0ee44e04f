#!/usr/bin/env bash
# Runs the browser tests of the chat page (tests/browser/): headless Chromium drives the
# page served by the real server binary, which streams answers from a mock
# OpenAI-compatible provider started by the tests.
#
# Usage: scripts/browser-tests.sh [extra arguments for `node --test`]
#   e.g. scripts/browser-tests.sh --test-name-pattern=stop
#
# Environment:
#   CHATBOX_BIN  the server binary to test; when unset, `cargo build -p chatbox` builds
#                target/debug/chatbox
#   CHROMIUM     the Chromium executable (default: /usr/bin/chromium). Playwright never
#                downloads a browser: the suite uses playwright-core with this executable
#   CI=true      the tests are required: a missing Chromium or Node.js is a failure. Outside
#                CI the script prints that the tests are SKIPPED, and why, and exits 0
#
# What it does: installs Chromium with apt-get if it is missing and this runs as root with
# apt-get available; installs the suite's pinned dependencies with `npm ci` (from
# tests/browser/package-lock.json, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1); builds the binary
# if needed; runs `node --test` on tests/browser/ one file at a time with a per-test
# timeout. The tests start and stop their own server and provider on free loopback ports.
#
# The suite's parts: support/harness.mjs (the shared fixture and waits), support/server.mjs
# (starts the binary), support/mock-provider.mjs (the
# provider), support/jwt.mjs (tokens), support/browser.mjs (Chromium, error collection),
# chat.test.mjs (the tests and the page's DOM contract they rely on).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE="$ROOT/tests/browser"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
TEST_TIMEOUT_MS=${BROWSER_TEST_TIMEOUT_MS:-90000}
NODE_MAJOR_MIN=20

# Outside CI a missing tool skips the suite; in CI it fails it.
unavailable() {
    if [[ "${CI:-}" == "true" ]]; then
        echo "browser tests: FAILED: $*" >&2
        exit 1
    fi
    echo "browser tests: SKIPPED: $* (they are required when CI=true)"
    exit 0
}

if [[ ! -x "$CHROMIUM" ]] && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1 \
    && [[ "$CHROMIUM" == /usr/bin/chromium ]]; then
    echo "browser tests: installing Chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q chromium
fi
[[ -x "$CHROMIUM" ]] || unavailable "no Chromium at $CHROMIUM (install the chromium package or set CHROMIUM)"

command -v node >/dev/null 2>&1 || unavailable "Node.js is not installed (version $NODE_MAJOR_MIN or later is needed)"
command -v npm >/dev/null 2>&1 || unavailable "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= NODE_MAJOR_MIN)) || unavailable "Node.js $node_major is too old (version $NODE_MAJOR_MIN or later is needed)"

echo "browser tests: installing the suite's dependencies (npm ci)"
(cd "$SUITE" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)

if [[ -z "${CHATBOX_BIN:-}" ]]; then
    echo "browser tests: building the server (cargo build -p chatbox)"
    (cd "$ROOT" && cargo build -p chatbox)
    CHATBOX_BIN="$ROOT/target/debug/chatbox"
fi
[[ -x "$CHATBOX_BIN" ]] || { echo "browser tests: FAILED: $CHATBOX_BIN is not an executable" >&2; exit 1; }
export CHATBOX_BIN CHROMIUM

echo "browser tests: running with $CHATBOX_BIN and $CHROMIUM"
cd "$ROOT"
exec node --test --test-concurrency=1 --test-timeout="$TEST_TIMEOUT_MS" "$@" tests/browser/
