#!/usr/bin/env bash
# A real S3-compatible server for tests: moto's standalone server (PyPI `moto[server]`,
# pinned below) in a Python virtual environment, on loopback, keeping objects in memory.
#
#   scripts/s3.sh start   install Python's venv module if it is missing and this runs as
#                         root, create the virtual environment and install moto once,
#                         start (or reuse) the server, wait until it answers, create the
#                         test bucket, print S3_ENDPOINT=…, S3_BUCKET=…, S3_REGION=…,
#                         S3_ACCESS_KEY_ID=…, S3_SECRET_ACCESS_KEY=… (and, when CI=true,
#                         CHATBOX_REQUIRE_S3=1) on standard output
#   scripts/s3.sh stop    stop it (SIGTERM, then SIGKILL after a deadline)
#   scripts/s3.sh url     print the variables of the running server, fail if none
#
# Environment:
#   S3_PORT         port to listen on (default: a free port is picked)
#   S3_STATE_DIR    pid file, port file and log (default: <repo>/target/s3, so every
#                   worktree has its own server)
#   S3_VENV_DIR     the virtual environment (default: <repo>/target/s3/venv)
#
# moto accepts any key pair; the ones printed are fixed test values, not secrets.
# Everything but the KEY=value lines goes to standard error, so standard output can be
# evaluated.
set -euo pipefail

moto_version=5.2.6
bucket=chatbox-test
region=us-east-1
access_key_id=chatbox-test-key-id
secret_access_key=chatbox-test-secret-access-key

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state_dir="${S3_STATE_DIR:-$repo_root/target/s3}"
venv_dir="${S3_VENV_DIR:-$repo_root/target/s3/venv}"
pid_file="$state_dir/s3.pid"
port_file="$state_dir/s3.port"
log_file="$state_dir/s3.log"

server_name=s3.sh
# shellcheck source=scripts/lib/local-server.sh
source "$repo_root/scripts/lib/local-server.sh"

# True when Python 3 can create a virtual environment with pip in it.
can_make_venv() {
  command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

# Makes the virtual environment with moto, unless it is there at the pinned version.
install_moto() {
  local marker="$venv_dir/.moto-$moto_version"
  [[ -f "$marker" && -x "$venv_dir/bin/moto_server" ]] && return 0
  if ! can_make_venv; then
    install_package python3 python3 || die "python3 is not installed (apt-get install python3)"
    if ! can_make_venv && [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's python3-venv package"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    fi
    can_make_venv || die "python3 cannot create a virtual environment (apt-get install python3-venv)"
  fi
  say "installing moto[server]==$moto_version into $venv_dir"
  rm -rf "$venv_dir"
  python3 -m venv "$venv_dir" >&2
  "$venv_dir/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" >&2 ||
    die "pip could not install moto[server]==$moto_version"
  touch "$marker"
}

# True when the server on port $1 answers an S3 request.
answers() {
  "$venv_dir/bin/python" - "$1" <<'PY' >/dev/null 2>&1
import sys
import urllib.request

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}

# Creates the test bucket on port $1; one already there is fine.
create_bucket() {
  "$venv_dir/bin/python" - "$1" "$bucket" "$region" "$access_key_id" "$secret_access_key" <<'PY' >&2
import sys

import boto3

port, bucket, region, key_id, secret = sys.argv[1:]
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://127.0.0.1:{port}",
    region_name=region,
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
)
try:
    s3.create_bucket(Bucket=bucket)
except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
    pass
PY
}

print_env() {
  echo "S3_ENDPOINT=http://127.0.0.1:$(cat "$port_file")"
  echo "S3_BUCKET=$bucket"
  echo "S3_REGION=$region"
  echo "S3_ACCESS_KEY_ID=$access_key_id"
  echo "S3_SECRET_ACCESS_KEY=$secret_access_key"
  if [[ "${CI:-}" == "true" ]]; then echo "CHATBOX_REQUIRE_S3=1"; fi
}

start() {
  mkdir -p "$state_dir"
  install_moto
  if [[ -n "$(running_pid)" ]] && answers "$(cat "$port_file")"; then
    create_bucket "$(cat "$port_file")" || die "could not create the bucket $bucket"
    say "already running on 127.0.0.1:$(cat "$port_file")"
    print_env
    return 0
  fi
  local port="${S3_PORT:-$(pick_port)}"
  echo "$port" >"$port_file"
  nohup "$venv_dir/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$log_file" 2>&1 &
  echo "$!" >"$pid_file"
  local deadline=$((SECONDS + 30))
  until answers "$port"; do
    [[ -n "$(running_pid)" ]] || die "the server exited; see $log_file"
    ((SECONDS < deadline)) || die "no answer on 127.0.0.1:$port within 30 s; see $log_file"
    sleep 0.2
  done
  create_bucket "$port" || die "could not create the bucket $bucket; see $log_file"
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
  *) die "usage: scripts/s3.sh start|stop|url" ;;
esac
