#!/usr/bin/env bash
# The web client's end-to-end tests in headless Chromium: installs what is missing (nodejs + npm + chromium with
# apt-get, playwright-core and axe-core with `npm ci` from the pinned lock file), runs the unit tests (`node --test
# web/tests/unit`; `run.sh unit` stops after them), then e2e.mjs, sso.mjs (single sign-on through a real OpenID
# Connect provider: on a running stack only when RH_OIDC_ISSUER, RH_OIDC_CLIENT_ID and RH_OIDC_CLIENT_SECRET name
# one that sends people back to RH_APP_URL) and stuck.mjs (which pauses the stack's worker and edge: on a running
# stack only when RH_WORKER_PID and RH_EDGE_PID name them).
#
# With RH_APP_URL set, it tests that running stack (the api URL that serves the web client). Without it, it
# starts a private stack of its own on free ports — nats-server (JetStream), PostgreSQL (data: pg_data_dir in
# scripts/lib.sh), the OpenID Connect provider of the SSO tests (e2e/oidc/provider.mjs), and the api (serving
# web/), edge, worker (simulated AI) and audit binaries — and stops it at the end. Screenshots go to
# RH_ARTIFACTS_DIR (default target/web-artifacts). Exit status: that of the test.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

# scripts/lib.sh: log/die, apt_install, and (for the private stack below) PostgreSQL and nats-server set-up.
source "$ROOT/scripts/lib.sh"

command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || die "node >= 18 needed, found $(node --version)"
# The unit tests of the client's pure parts (the conversation reducer): node's own test runner, no browser.
log "node --test web/tests/unit"
node --test "$HERE/unit/"
[ "${1:-}" = unit ] && exit 0
export RH_CHROMIUM="${RH_CHROMIUM:-/usr/bin/chromium}"
[ -x "$RH_CHROMIUM" ] || apt_install chromium fonts-dejavu-core
[ -x "$RH_CHROMIUM" ] || die "chromium not found at $RH_CHROMIUM"

log "npm ci (playwright-core, pinned)"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

export RH_ARTIFACTS_DIR="${RH_ARTIFACTS_DIR:-$ROOT/target/web-artifacts}"
mkdir -p "$RH_ARTIFACTS_DIR"

if [ -n "${RH_APP_URL:-}" ]; then
  log "testing the running stack at $RH_APP_URL"
  node "$HERE/e2e.mjs"
  if [ -n "${RH_OIDC_ISSUER:-}" ]; then node "$HERE/sso.mjs"; else log "sso.mjs skipped: RH_OIDC_ISSUER is not set"; fi
  # stuck.mjs pauses the stack's worker and edge: only when the caller says which processes they are.
  if [ -n "${RH_WORKER_PID:-}" ] && [ -n "${RH_EDGE_PID:-}" ]; then node "$HERE/stuck.mjs"; fi
  exit 0
fi

# ---------------------------------------------------------------- a private stack
# scripts/lib.sh installs PostgreSQL and nats-server when missing and starts private instances on free ports.
ensure_tools
ensure_oidc_provider
log "building api, edge, worker, audit"
cargo build --bin api --bin edge --bin worker --bin audit

STACK="$ROOT/target/web-e2e"
PG_DIR="$(pg_data_dir web-e2e-pg)"
remove_postgres "$PG_DIR"
rm -rf "$STACK"
mkdir -p "$STACK/logs"
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # stuck.mjs pauses the worker and the edge: a stopped process would hold SIGTERM until continued.
  for pid in "${PIDS[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  remove_postgres "$PG_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PG_PORT=$(free_port)
start_postgres "$PG_DIR" "$PG_PORT"
pg_client createdb "$PG_PORT" relayhub
start_nats "$STACK/nats" -p -1 -m -1
PIDS+=("$NATS_PID")

API_PORT=$(free_port)
EDGE_PORT=$(free_port)
export RH_NATS_URL="$NATS_URL"
export RH_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/relayhub"
RH_JWT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export RH_JWT_SECRET
export RH_API_LISTEN="127.0.0.1:$API_PORT" RH_EDGE_LISTEN="127.0.0.1:$EDGE_PORT"
export RH_PUBLIC_WS_URL="ws://127.0.0.1:$EDGE_PORT/ws"
export RH_WEB_DIR="$ROOT/web"
export RH_WORKER_OPS_LISTEN="127.0.0.1:0" RH_AUDIT_OPS_LISTEN="127.0.0.1:0"
export RH_PROVIDER=simulated
# stuck.mjs waits for the "AI unavailable" state: shorter than the default 15 s to keep the test quick.
export RH_AI_WAIT_SECS=3
# e2e.mjs asks for a 4th answer while 3 stream in one conversation (as e2e/tests/e2e/web_client.rs sets it).
export RH_LIMIT_CONVERSATION_RESPONSES=3

# sso.mjs: the provider (it picks its own port) sends people back to the api, which allows it as an issuer.
export RH_PUBLIC_URL="http://127.0.0.1:$API_PORT" RH_SSO_ALLOWED_ISSUERS="http://127.0.0.1:"
export RH_OIDC_CLIENT_ID=relayhub-web-e2e
RH_OIDC_CLIENT_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export RH_OIDC_CLIENT_SECRET
RH_OIDC_MODULES="$OIDC_MODULES" RH_OIDC_CLIENTS="$(printf '[{"client_id":"%s","client_secret":"%s","redirect_uris":["%s/"]}]' \
  "$RH_OIDC_CLIENT_ID" "$RH_OIDC_CLIENT_SECRET" "$RH_PUBLIC_URL")" \
  node "$ROOT/e2e/oidc/provider.mjs" >"$STACK/logs/oidc.out" 2>"$STACK/logs/oidc.log" &
PIDS+=("$!")
OIDC_PID=$!
for _ in $(seq 1 300); do
  RH_OIDC_ISSUER="$(sed -n 's/^listening oidc //p' "$STACK/logs/oidc.out" 2>/dev/null)"
  [ -n "$RH_OIDC_ISSUER" ] && break
  kill -0 "$OIDC_PID" 2>/dev/null || { tail -20 "$STACK/logs/oidc.log" >&2; die "the OIDC provider exited"; }
  sleep 0.1
done
[ -n "$RH_OIDC_ISSUER" ] || die "the OIDC provider did not start; see $STACK/logs/oidc.log"
export RH_OIDC_ISSUER

start_service() {
  local name="$1"
  # shellcheck disable=SC2046 # nats_login prints two words, hex only
  env $(nats_login "$name") "$ROOT/target/debug/$name" >"$STACK/logs/$name.out" 2>"$STACK/logs/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  LAST_PID=$pid
  for _ in $(seq 1 300); do
    grep -q "^listening $name " "$STACK/logs/$name.out" 2>/dev/null && return
    kill -0 "$pid" 2>/dev/null || { tail -20 "$STACK/logs/$name.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  die "$name did not start; see $STACK/logs/$name.log"
}
start_service api
start_service edge
export RH_EDGE_PID=$LAST_PID
start_service audit
start_service worker
export RH_WORKER_PID=$LAST_PID
log "stack up: api http://127.0.0.1:$API_PORT (logs in $STACK/logs)"

export RH_APP_URL="http://127.0.0.1:$API_PORT"
status=0
node "$HERE/e2e.mjs" || status=$?
if [ "$status" = 0 ]; then node "$HERE/sso.mjs" || status=$?; fi
if [ "$status" = 0 ]; then node "$HERE/stuck.mjs" || status=$?; fi
if [ "$status" != 0 ]; then
  rm -rf "$RH_ARTIFACTS_DIR/stack-logs" && cp -r "$STACK/logs" "$RH_ARTIFACTS_DIR/stack-logs" || true
  log "failed; service logs copied to $RH_ARTIFACTS_DIR/stack-logs"
fi
exit "$status"
