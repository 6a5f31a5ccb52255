#!/usr/bin/env bash
# run-example.sh — builds Sluice and runs it on the bundled example config
# (config/sluice.yaml) against the in-project mock provider. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build

mock_port=${MOCK_PORT:-9001}
./build/sluice-mock --listen "127.0.0.1:${mock_port}" --threads 1 --quiet &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
export MOCK_BASE_URL="http://127.0.0.1:${mock_port}/v1" MOCK_ROOT_URL="http://127.0.0.1:${mock_port}"
export SLUICE_LISTEN=${SLUICE_LISTEN:-127.0.0.1:8080}
port=${SLUICE_LISTEN##*:}

cat <<MSG

Sluice is starting on http://127.0.0.1:${port} (mock provider on :${mock_port}).
Try it from another terminal:

  curl -s http://127.0.0.1:${port}/v1/chat/completions \\
    -H 'Authorization: Bearer sk-sluice-example' -H 'Content-Type: application/json' \\
    -d '{"model":"fast","messages":[{"role":"user","content":"Hello"}]}'

  curl -sN http://127.0.0.1:${port}/v1/chat/completions \\
    -H 'Authorization: Bearer sk-sluice-example' -H 'Content-Type: application/json' \\
    -d '{"model":"fast","stream":true,"messages":[{"role":"user","content":"Hello"}]}'

  OPENAI_BASE_URL=http://127.0.0.1:${port}/v1 OPENAI_API_KEY=sk-sluice-example  # for the OpenAI SDKs

Access log lines (JSON) follow below. Ctrl-C to stop.

MSG
./build/sluice -c config/sluice.yaml
