#!/usr/bin/env bash
# RSS of the service over a sustained run: bench/soak.sh [seconds, default 600]
# Starts its own redis-server and the built service (npm run build first) on
# free loopback ports, drives them with the Go loadgen (mixed, 64 in flight),
# and prints VmRSS every 15 s, then the loadgen's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
loadgen=${GO_REFERENCE:?set GO_REFERENCE to a built Go reference (bench/README.md)}/bin/loadgen
[ -x "$loadgen" ] || { echo "no Go loadgen at $loadgen (see bench/README.md)" >&2; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(port); grpc_port=$(port); http_port=$(port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
redis=$!
summary=$(mktemp)
trap 'kill $redis ${server:-} ${load:-} 2>/dev/null || true; rm -f "$summary"' EXIT
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.1; done
REDIS_HOST=127.0.0.1 REDIS_PORT=$redis_port HOST=127.0.0.1 PORT=$grpc_port HTTP_PORT=$http_port \
  LOG_LEVEL=warn node dist/main.js >/dev/null &
server=$!
until curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null; do sleep 0.1; done
"$loadgen" -addr "127.0.0.1:$grpc_port" -op mixed -c 64 -d "${seconds}s" -warmup 0s \
  -watch "server=$server" >"$summary" 2>/dev/null &
load=$!
for ((t = 0; t <= seconds; t += 15)); do
  echo "$t s: $(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$server/status")"
  sleep 15
done
wait "$load"
head -1 "$summary"
