#!/usr/bin/env bash
# Runs Schemathesis (an independent OpenAPI fuzzer) against a real `sightline serve`:
# every operation of /openapi.json, all checks, with an admin token; the argued exceptions
# are in tests/conformance/schemathesis.toml.
#   tests/conformance/openapi_fuzz.sh [SIGHTLINE_BIN] [extra schemathesis args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/debug/sightline}"; shift || true
ST="${SCHEMATHESIS:-.venv-test/bin/schemathesis}"
DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export SIGHTLINE_DATA_DIR="$DATA" SIGHTLINE_API__BIND="127.0.0.1:$PORT" SIGHTLINE_LOG__FORMAT=text
export SL_FUZZ_TOKEN="slt_$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
"$BIN" token create --role admin --name fuzz --secret-env SL_FUZZ_TOKEN >/dev/null
TOKEN="$SL_FUZZ_TOKEN"
"$BIN" configs put demo configs/demo.toml >/dev/null
"$BIN" serve --rtsp-port 0 > "$DATA/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 120); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.5; done
"$ST" --config-file tests/conformance/schemathesis.toml \
  run "http://127.0.0.1:$PORT/openapi.json" -H "Authorization: Bearer $TOKEN" \
  --workers 1 --seed 1 --no-shrink "$@"
