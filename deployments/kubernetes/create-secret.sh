#!/usr/bin/env bash
# Creates or updates the Secret `chatbox-secrets` from the environment, refusing a weak
# JWT_SECRET with the same rule as the service (so a weak key is caught here, not by a
# pod in CrashLoopBackOff).
#
#   JWT_SECRET="$(openssl rand -base64 48)" deployments/kubernetes/create-secret.sh
#
# Reads JWT_SECRET (required) and, when set and not empty, LLM_PROVIDER_<N>_API_KEY,
# MONGO_URI, ENCRYPTION_KEY, ENCRYPTION_OLD_KEYS, REDIS_URL, SMTP_PASS, SMS_AUTH_TOKEN, UPLOAD_S3_ACCESS_KEY_ID and
# UPLOAD_S3_SECRET_ACCESS_KEY.
# Values never appear on a command line or in the output.
#
# Options:
#   --check-only     only check JWT_SECRET; exit 0 if the service would accept it, 1 if not
#   --write FILE     write the Secret manifest to FILE (mode 600) instead of applying it,
#                    e.g. deployments/kubernetes/secret.yaml (git-ignored), for
#                    `kubectl apply -f deployments/kubernetes/secret.yaml -n chatbox`
#   -n, --namespace  namespace (default chatbox)
#   --name           Secret name (default chatbox-secrets)
#
# Without --check-only or --write it applies the Secret with `kubectl apply
# --server-side`, creating or updating it. Pods read it when they start:
#   kubectl rollout restart deployment/chatbox-websocket -n chatbox
set -euo pipefail

namespace=chatbox
name=chatbox-secrets
mode=apply
output=

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while (($#)); do
  case "$1" in
    --check-only) mode=check ;;
    --write)
      mode="write"
      output=${2:?--write needs a file name}
      shift
      ;;
    -n | --namespace)
      namespace=${2:?$1 needs a namespace}
      shift
      ;;
    --name)
      name=${2:?--name needs a name}
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "create-secret: unknown argument $1 (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

# The service's rule (infrastructure/src/config/rules.rs, weak_secret_reason): at least
# 32 bytes; none of these patterns, ignoring ASCII case; at least 8 distinct characters.
# Prints the reason and returns 1 when the secret is weak; never prints the secret.
weak_patterns=(secret password changeme change-me change_me default example placeholder
  replace_with your- test123 12345 qwerty admin)
check_jwt_secret() {
  # The C locale (exported to tr and sort too) makes ${#secret} count bytes, as the
  # service does, case folding ASCII-only and comparisons bytewise, whatever the
  # caller's locale.
  local -x LC_ALL=C
  local secret=$1 lower pattern distinct
  if ((${#secret} < 32)); then
    echo "JWT_SECRET must be at least 32 bytes" >&2
    return 1
  fi
  # ASCII-only lower case (the C locale's), as Rust's to_ascii_lowercase.
  lower=$(printf '%s' "$secret" | tr '[:upper:]' '[:lower:]')
  for pattern in "${weak_patterns[@]}"; do
    if [[ $lower == *"$pattern"* ]]; then
      echo "JWT_SECRET contains the weak pattern \"$pattern\"" >&2
      return 1
    fi
  done
  # Distinct characters (Unicode scalar values, not bytes): one per line, then counted.
  # grep's "." never matches a line break, so one is counted apart.
  distinct=$(printf '%s' "$secret" | { LC_ALL=C.UTF-8 grep -o . || true; } | sort -u | wc -l)
  if [[ $secret == *$'\n'* ]]; then distinct=$((distinct + 1)); fi
  if ((distinct < 8)); then
    echo "JWT_SECRET must contain at least 8 distinct characters" >&2
    return 1
  fi
}

if [[ -z ${JWT_SECRET:-} ]]; then
  echo "create-secret: JWT_SECRET is not set; try: export JWT_SECRET=\"\$(openssl rand -base64 48)\"" >&2
  exit 1
fi
if ! check_jwt_secret "$JWT_SECRET"; then
  echo "create-secret: refused: the service would not start with this JWT_SECRET" >&2
  exit 1
fi
if [[ $mode == check ]]; then
  echo "create-secret: JWT_SECRET is acceptable"
  exit 0
fi

keys=(JWT_SECRET)
while read -r var; do
  if [[ $var =~ ^LLM_PROVIDER_[1-9][0-9]*_API_KEY$ ]]; then keys+=("$var"); fi
done < <(compgen -e | LC_ALL=C sort -V)
for var in MONGO_URI ENCRYPTION_KEY ENCRYPTION_OLD_KEYS REDIS_URL SMTP_PASS SMS_AUTH_TOKEN UPLOAD_S3_ACCESS_KEY_ID UPLOAD_S3_SECRET_ACCESS_KEY; do
  keys+=("$var")
done

manifest() {
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$namespace"
  printf '  labels:\n    app: chatbox\ntype: Opaque\ndata:\n'
  local key
  for key in "${keys[@]}"; do
    if [[ -n ${!key:-} ]]; then
      printf '  %s: %s\n' "$key" "$(printf '%s' "${!key}" | base64 | tr -d '\n')"
    fi
  done
}

included=()
for key in "${keys[@]}"; do
  if [[ -n ${!key:-} ]]; then included+=("$key"); fi
done

case $mode in
  write)
    (umask 077 && manifest >"$output")
    echo "create-secret: wrote $output with ${included[*]}; apply it with: kubectl apply -f $output -n $namespace"
    ;;
  apply)
    if ! command -v kubectl >/dev/null 2>&1; then
      echo "create-secret: kubectl not found (use --write FILE to only write the manifest)" >&2
      exit 1
    fi
    manifest | kubectl apply --server-side --force-conflicts --field-manager=chatbox-create-secret -f -
    echo "create-secret: $namespace/$name holds ${included[*]}; restart the pods to use it:"
    echo "  kubectl rollout restart deployment/chatbox-websocket -n $namespace"
    ;;
esac
