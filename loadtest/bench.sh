#!/usr/bin/env bash
# Brings up a RELEASE stack on this machine (private nats-server with JetStream and its WebSocket listener,
# private PostgreSQL, api, edge(s), audit, worker(s)), all with data under target/bench, runs the load tool against
# it with the given arguments, and tears everything down. This is how loadtest/RESULTS.md was produced.
#
#   loadtest/bench.sh --conversations 1 --viewers-per-conversation 10000 --tokens 500 --rate 50 --report r.json
#
# Environment: RH_BENCH_EDGES (1), RH_BENCH_WORKERS (1), RH_BENCH_KEEP=1 keeps the logs of the last run,
# RH_BENCH_LB=haproxy puts a private HAProxy (round robin, no sticky sessions, health-checked on /readyz; installed
# when missing) in front of the edges and gives the load tool its one URL instead of the edges' own.
# The edge pid(s) and the nats-ws URL are passed to the load tool (--edge-pid, --nats-ws-url) automatically.
#
# Chaos: with `--chaos edge,worker,nats [--chaos-every 10s]` (flags of the load tool, read here too) this script
# kills (SIGKILL) a random process of those kinds every interval while the tool runs, and starts it again on the
# same address (nats-server: same port and data). Workers then run with a 5 s job ack wait, so a killed worker's
# job comes back quickly.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CHAOS="" CHAOS_EVERY=10
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --chaos) CHAOS="${args[$((i + 1))]:-}" ;;
    --chaos=*) CHAOS="${args[$i]#--chaos=}" ;;
    --chaos-every) CHAOS_EVERY="${args[$((i + 1))]:-10}" ;;
    --chaos-every=*) CHAOS_EVERY="${args[$i]#--chaos-every=}" ;;
  esac
done
CHAOS_EVERY="${CHAOS_EVERY%s}"
[[ "$CHAOS_EVERY" =~ ^[0-9]+$ ]] || die "--chaos-every: whole seconds, e.g. 10s"

ensure_tools
case "${RH_BENCH_LB:-}" in
  "") ;;
  haproxy) command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || apt_install haproxy ;;
  *) die "RH_BENCH_LB: only haproxy is supported" ;;
esac
log "building (release)"
cargo build --release -q -p rh-api -p edge -p worker -p audit -p loadtest

B="$PWD/target/bench"
PG_DIR="$(pg_data_dir bench-pg)"
remove_postgres "$PG_DIR"
rm -rf "$B"
mkdir -p "$B/logs"
PIDS=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # A process still up after 10 s (e.g. a worker stuck in its shutdown) is killed, so the script never hangs.
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  remove_postgres "$PG_DIR"
}
trap cleanup INT TERM EXIT

PG_PORT=$(free_port)
# pg_stat_statements (when installed) says which statements PostgreSQL's CPU went to; printed at the end.
PG_STATS=""
[ -f "$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo /nonexistent)/pg_stat_statements.so" ] &&
  PG_STATS="-c shared_preload_libraries=pg_stat_statements"
start_postgres "$PG_DIR" "$PG_PORT" "$PG_STATS"
pg_client createdb "$PG_PORT" relayhub
[ -n "$PG_STATS" ] && pg_client psql "$PG_PORT" -q relayhub \
  -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
WS_PORT=$(free_port)
# The streams reserve 3 x 8 GiB (RH_CONV, RH_AUDIT, attachments); JetStream's default limit is 75 % of the free
# disk, which a busy build machine may not have. The bench writes far less.
NATS_EXTRA_CONF="websocket { host: 127.0.0.1, port: $WS_PORT, no_tls: true, compression: false }
max_pending: 256MB
jetstream { max_file_store: 1TB }"
start_nats "$B/nats" -p -1 -m -1
PIDS+=("$NATS_PID")
NAMES=(nats-server)
NATS_PORT="${NATS_URL##*:}"

export RH_NATS_URL="$NATS_URL" RH_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/relayhub"
export RH_JWT_SECRET="bench-$(python3 -c 'import secrets; print(secrets.token_hex(32))')" RUST_LOG="${RUST_LOG:-warn}"
BIN="$PWD/target/release"
ADDRS=()
# start NAME VAR=VALUE...: starts a release binary and prints its announced http://addr.
start() {
  local name="$1" out="$B/logs/$1.$RANDOM"; shift
  NAMES+=("$name")
  # shellcheck disable=SC2046 # nats_login prints two words, hex only
  env $(nats_login "$name") "$@" "$BIN/$name" >"$out.out" 2>"$out.log" &
  PIDS+=("$!")
  LAST_PID=$!
  for _ in $(seq 1 300); do
    if grep -q "^listening $name " "$out.out" 2>/dev/null; then
      LAST_ADDR=$(sed -n "s/^listening $name http:\/\///p" "$out.out" | head -1)
      ADDRS+=("$name=$LAST_ADDR")
      return
    fi
    kill -0 "$LAST_PID" 2>/dev/null || { tail -20 "$out.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  die "$name did not start"
}

# The load tool's few senders start thousands of replies, and its viewers all sign in from one address: the reply
# and sign-in limits are off here. Its viewers hold one access token for the whole run (they do not refresh):
# tokens live a day here instead of 15 minutes, or long runs' sockets would close at expiry.
start api RH_API_LISTEN=127.0.0.1:0 RH_LIMIT_USER_REPLIES_BURST=0 RH_LIMIT_ORG_REPLIES_BURST=0 \
  RH_LIMIT_SIGNIN_ADDR_BURST=0 RH_LIMIT_SIGNIN_EMAIL_BURST=0 RH_TOKEN_TTL_SECS=86400
API="http://$LAST_ADDR"
WS=() EDGE_PIDS=() EDGE_ADDRS=() WORKER_PIDS=()
WORKER_ENV=(RH_WORKER_OPS_LISTEN=127.0.0.1:0 RH_WORKER_CONCURRENCY=2000)
[ -n "$CHAOS" ] && WORKER_ENV+=(RH_JOB_ACK_WAIT_SECS=5)
for _ in $(seq 1 "${RH_BENCH_EDGES:-1}"); do
  start edge RH_EDGE_LISTEN=127.0.0.1:0
  WS+=("ws://$LAST_ADDR/ws")
  EDGE_PIDS+=("$LAST_PID")
  EDGE_ADDRS+=("$LAST_ADDR")
done
if [ "${RH_BENCH_LB:-}" = haproxy ]; then
  # Each connection holds two file descriptors in HAProxy (client and edge side).
  LB_PORT=$(free_port) LB_MAXCONN=$((($(ulimit -n) - 100) / 2))
  {
    printf 'global\n  maxconn %s\n' "$LB_MAXCONN"
    printf 'defaults\n  mode http\n  timeout connect 2s\n  timeout client 120s\n  timeout server 120s\n'
    printf '  timeout tunnel 1h\n  retries 3\n  option redispatch\n'
    printf 'frontend ws\n  bind 127.0.0.1:%s\n  default_backend edges\n' "$LB_PORT"
    printf 'backend edges\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n'
    printf '  default-server inter 500ms fall 2 rise 1 maxconn %s\n' "$LB_MAXCONN"
    for i in "${!WS[@]}"; do
      addr=${WS[$i]#ws://}
      printf '  server edge%s %s check\n' "$i" "${addr%/ws}"
    done
  } >"$B/haproxy.cfg"
  HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
  "$HAPROXY" -db -f "$B/haproxy.cfg" >"$B/logs/haproxy.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=(haproxy)
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$LB_PORT/readyz" >/dev/null && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$B/logs/haproxy.log" >&2; die "haproxy exited"; }
    sleep 0.1
  done
  WS=("ws://127.0.0.1:$LB_PORT/ws")
fi
start audit RH_AUDIT_OPS_LISTEN=127.0.0.1:0
for _ in $(seq 1 "${RH_BENCH_WORKERS:-1}"); do
  start worker "${WORKER_ENV[@]}"
  WORKER_PIDS+=("$LAST_PID")
done

# chaos_kill KIND: SIGKILL one random process of KIND and start it again where it was.
chaos_kill() {
  local kind="$1" i pid t0
  t0=$(date +%s%N)
  case "$kind" in
    edge)
      i=$((RANDOM % ${#EDGE_PIDS[@]})) pid=${EDGE_PIDS[$i]}
      kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      start edge "RH_EDGE_LISTEN=${EDGE_ADDRS[$i]}"
      EDGE_PIDS[$i]=$LAST_PID ;;
    worker)
      i=$((RANDOM % ${#WORKER_PIDS[@]})) pid=${WORKER_PIDS[$i]}
      kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      start worker "${WORKER_ENV[@]}"
      WORKER_PIDS[$i]=$LAST_PID ;;
    nats)
      pid=$NATS_PID
      kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
      start_nats "$B/nats" -p "$NATS_PORT" -m -1
      PIDS+=("$NATS_PID") NAMES+=(nats-server) ;;
    *) die "--chaos: unknown kind $kind (edge, worker, nats)" ;;
  esac
  log "chaos: killed $kind $pid, back in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

# chaos_loop PID: every CHAOS_EVERY seconds while PID (the load tool) runs, kills a random one of CHAOS.
chaos_loop() {
  local tool="$1" kinds
  IFS=, read -r -a kinds <<<"$CHAOS"
  while kill -0 "$tool" 2>/dev/null; do
    for _ in $(seq 1 $((CHAOS_EVERY * 10))); do
      kill -0 "$tool" 2>/dev/null || return 0
      sleep 0.1
    done
    chaos_kill "${kinds[$((RANDOM % ${#kinds[@]}))]}"
  done
}
log "stack up: api $API, edges ${WS[*]}, nats $NATS_URL, nats-ws ws://127.0.0.1:$WS_PORT"

join() { local IFS=,; echo "$*"; }
status=0
TIMEFORMAT="load tool: %Us user + %Ss system CPU in %Rs"
run_tool() {
  time env RH_LOADTEST_NATS_WS_PASSWORD="${NATS_PASS[admin]}" "$BIN/loadtest" --api "$API" --ws "$(join "${WS[@]}")" --edge-pid "$(join "${EDGE_PIDS[@]}")" \
    --nats-ws-url "ws://127.0.0.1:$WS_PORT" --nats-ws-user admin "$@"
}
if [ -n "$CHAOS" ]; then
  run_tool "$@" &
  TOOL_PID=$!
  chaos_loop "$TOOL_PID"
  wait "$TOOL_PID" || status=$?
else
  run_tool "$@" || status=$?
fi
for pid in "${EDGE_PIDS[@]}"; do
  log "edge $pid: $(grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \n' ' ')"
done
# Every service's /metrics at the end, in target/bench/metrics/ (the edge's access and catch-up histograms are
# summarized here).
mkdir -p "$B/metrics"
for entry in "${ADDRS[@]}"; do
  curl -s -m 5 "http://${entry#*=}/metrics" >"$B/metrics/${entry%%=*}-${entry#*=}.prom" || true
done
# mean NAME LABELS FILE...: count, mean and the bucket holding the p99 of a histogram (LABELS as printed, e.g.
# {subject="x"}, or '').
mean() {
  local name="$1" labels="$2" unit="${MEAN_UNIT:-ms}"; shift 2
  awk -v h="$name" -v l="$labels" -v u="$unit" '
    BEGIN { b = h "_bucket" (l == "" ? "{" : substr(l, 1, length(l) - 1) ",") "le=\"" }
    $1 == h"_sum"l { s += $2 } $1 == h"_count"l { c += $2 }
    index($1, b) == 1 { le = substr($1, length(b) + 1); sub(/".*/, "", le); n++; les[n] = le; cum[le] += $2 }
    END {
      if (c == 0) exit
      k = (u == "ms" ? 1000 : 1); p99 = "+Inf"
      for (i = n; i >= 1; i--) if (cum[les[i]] >= 0.99 * c) p99 = les[i]
      printf "%s%s: %d, mean %.1f %s, p99 <= %s %s\n", h, l, c, k * s / c, u, (p99 == "+Inf" ? p99 : k * p99), u
    }' "$@"
}
mean relayhub_edge_access_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_edge_catch_up_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_edge_live_lag_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_worker_publish_ack_seconds '' "$B"/metrics/worker-*.prom
mean relayhub_api_rpc_duration_seconds '{subject="rh.api.access"}' "$B"/metrics/api-*.prom
MEAN_UNIT=requests mean relayhub_api_grant_batch_size '' "$B"/metrics/api-*.prom
# CPU seconds (user + system) each process of the stack used, to see what bounds a run on a shared machine.
TICKS=$(getconf CLK_TCK)
for i in "${!PIDS[@]}"; do
  pid=${PIDS[$i]}
  [ -r "/proc/$pid/stat" ] || continue
  log "$(printf '%-12s' "${NAMES[$i]}") $(awk -v t="$TICKS" '{ printf "%.1fs CPU", ($14 + $15) / t }' "/proc/$pid/stat")"
done
if [ -n "$PG_STATS" ]; then
  log "PostgreSQL's busiest statements (total ms, calls, mean ms):"
  pg_client psql "$PG_PORT" relayhub -At -F ' | ' -c \
    "SELECT round(total_exec_time::numeric), calls, round(mean_exec_time::numeric, 3), left(regexp_replace(query, '\s+', ' ', 'g'), 110) FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8" || true
fi
# PostgreSQL: the postmaster, its live backends, and (cutime + cstime) the backends that already exited.
PG_PID=$(head -1 "$PG_DIR/postmaster.pid" 2>/dev/null || true)
if [ -n "$PG_PID" ]; then
  for p in $PG_PID $(pgrep -P "$PG_PID"); do cat "/proc/$p/stat" 2>/dev/null; done |
    awk -v t="$TICKS" '{ s += $14 + $15 + $16 + $17 } END { printf "postgres     %.1fs CPU\n", s / t }' |
    while read -r line; do log "$line"; done
fi
exit $status
