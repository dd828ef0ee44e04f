#!/usr/bin/env bash
# Exercises the running server's HTTP API against its own OpenAPI document with
# schemathesis: every documented route, with generated valid and invalid inputs, must
# answer without a 5xx, with a documented status, content type and body schema.
#
# Starts the compiled binary (building it if needed) on a free loopback port with an
# admin token minted here, runs schemathesis, stops the server. Installs schemathesis on
# first use in a Python virtual environment under
# ${XDG_CACHE_HOME:-$HOME/.cache}/chatbox-tools (about a minute); later runs take seconds.
#
# CHATBOX_BIN selects the binary (default target/debug/chatbox);
# CHATBOX_API_EXAMPLES the examples per operation (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL="schemathesis==4.32.5"
CACHE="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/chatbox-tools"
VENV="$CACHE/venv-api"
BIN="${CHATBOX_BIN:-target/debug/chatbox}"
EXAMPLES="${CHATBOX_API_EXAMPLES:-60}"
WORK="$(mktemp -d)"

server_pid=""
# shellcheck disable=SC2329 # invoked by the EXIT trap
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== schemathesis ($VENV)"
if [[ ! -x $VENV/bin/schemathesis || "$(cat "$VENV/.tools" 2>/dev/null)" != "$TOOL" ]]; then
  echo "installing $TOOL"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$TOOL"
  echo "$TOOL" >"$VENV/.tools"
fi

if [[ ! -x $BIN ]]; then
  echo "== building $BIN"
  cargo build -p chatbox --bin chatbox
fi

# A random secret for this run only (letters and digits, so no weak pattern to speak of).
secret="$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

echo "== starting $BIN on 127.0.0.1:$port"
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  JWT_SECRET="$secret" SERVER_HOST=127.0.0.1 SERVER_PORT="$port" \
  LLM_PROVIDER_1_ID=demo LLM_PROVIDER_1_NAME=Demo LLM_PROVIDER_1_TYPE=demo LLM_PROVIDER_1_DELAY=1ms \
  ADMIN_RATE_LIMIT=1000000 LOG_LEVEL=warn SHUTDOWN_TIMEOUT=5s \
  "$BIN" >"$WORK/server.log" 2>&1 &
server_pid=$!

base="http://127.0.0.1:$port/chat"
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$base/readyz" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server exited:" >&2
    cat "$WORK/server.log" >&2
    exit 1
  fi
  sleep 0.1
done

# An admin token (HS256), so every route is reachable; minted with Python's standard
# library (no other tool needed).
token="$(
  SECRET="$secret" python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = {"user_id": "schemathesis", "name": "Schemathesis", "roles": ["admin"], "exp": int(time.time()) + 3600}
payload = b64(json.dumps(claims).encode())
signature = hmac.new(os.environ["SECRET"].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
print(f"{header}.{payload}.{b64(signature)}")
PY
)"

# One conversation first, so the listings and the analytics have something to show (the
# API itself creates no sessions; a WebSocket does). Python's standard library speaks
# just enough of the protocol: one masked text frame out, frames in until the answer's
# last one.
echo "== one conversation over the WebSocket"
PORT="$port" TOKEN="$token" python3 - <<'PY'
import base64, json, os, socket, struct
sock = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall((f"GET /chat/ws?token={os.environ['TOKEN']} HTTP/1.1\r\nHost: localhost\r\n"
              f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
buffer = b""
while b"\r\n\r\n" not in buffer:
    buffer += sock.recv(4096)
head, buffer = buffer.split(b"\r\n\r\n", 1)
assert head.startswith(b"HTTP/1.1 101"), head
def read(n):
    global buffer
    while len(buffer) < n:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the socket"
        buffer += chunk
    data, buffer = buffer[:n], buffer[n:]
    return data
payload = json.dumps({"type": "user_message", "content": "Hello from the API check"}).encode()
mask = os.urandom(4)
sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
while True:
    first, second = read(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", read(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", read(8))[0]
    frame = read(length)
    if first & 0x0F == 1 and json.loads(frame).get("metadata", {}).get("done") == "true":
        break
sock.close()
print("answered")
PY

echo "== schemathesis run $base/openapi.json"
status=0
"$VENV/bin/schemathesis" run "$base/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --max-examples "$EXAMPLES" \
  --phases examples,coverage,fuzzing \
  --workers 2 \
  --seed 1 \
  --generation-database none \
  --no-color \
  --report-dir "$WORK/report" || status=$?

if grep -q '"level":"ERROR"' "$WORK/server.log"; then
  echo "the server logged errors during the run:" >&2
  grep '"level":"ERROR"' "$WORK/server.log" >&2
  status=1
fi
exit "$status"
