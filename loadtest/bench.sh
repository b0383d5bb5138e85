#!/usr/bin/env bash
# Brings up a RELEASE stack on this machine (private nats-server with JetStream and its WebSocket listener,
# private PostgreSQL, api, edge(s), audit, worker(s)), all with data under target/bench, runs the load tool against
# it with the given arguments, and tears everything down. This is how loadtest/RESULTS.md was produced.
#
#   loadtest/bench.sh --conversations 1 --viewers-per-conversation 10000 --tokens 500 --rate 50 --report r.json
#   loadtest/bench.sh b --report target/lt/b.json     # a RESULTS.md scenario by its letter (a, b, c, d, e)
#   loadtest/bench.sh --quick                         # the regression guard: key ratios in under two minutes
#
# Scenario letters expand to the flags in RESULTS.md (a, b and e with every baseline; Pushpin last, as it may still
# be working off its backlog when its phase ends); later flags are added.
# With `--baseline` naming `pushpin` and/or `bare`, this script also starts a private Pushpin (Debian's package,
# installed when missing; config, logs and runtime files under target/bench/pushpin, every port free) and/or the
# `bare-fanout` broadcaster, and passes their addresses to the load tool; every process's pid goes to the tool as
# `--cpu-pid` so each phase reports CPU seconds per million deltas.
#
# Environment: RH_BENCH_EDGES (1), RH_BENCH_WORKERS (1), RH_BENCH_BIN (the binaries' folder, default target/release:
# point it at a copy of another build's to compare before/after), RH_BENCH_CALLGRIND=edge,worker (instruction counts of
# those processes, printed at the end), RH_BENCH_KEEP=1 keeps the logs of the last run,
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

QUICK=0
case "${1:-}" in
  a) shift; set -- --conversations 1 --viewers-per-conversation 10000 --tokens 500 --rate 50 --ramp-up 10s \
       --baseline nats-ws,nats-ws-live,bare,pushpin --no-progress "$@" ;;
  b) shift; set -- --conversations 1000 --viewers-per-conversation 10 --rate 20 --tokens 200 --ramp-up 10s \
       --baseline nats-ws,nats-ws-live,bare,pushpin --no-progress "$@" ;;
  c) shift; set -- --conversations 1 --viewers-per-conversation 10 --late-joiners 1000 --join-after-tokens 2000 \
       --tokens 3000 --rate 200 --no-progress "$@" ;;
  d) shift; set -- --idle-connections 15000 --viewers-per-conversation 0 --no-progress "$@" ;;
  e) shift; set -- --conversations 1 --viewers-per-conversation 5000 --tokens 300 --rate 50 --ramp-up 5s \
       --baseline nats-ws,nats-ws-live,bare,pushpin --no-progress "$@" ;;
  --quick) shift; QUICK=1
    set -- --conversations 50 --viewers-per-conversation 40 --tokens 150 --rate 50 --ramp-up 2s \
      --baseline nats-ws,nats-ws-live,bare --no-progress --report target/lt/quick.json "$@" ;;
esac
CHAOS="" CHAOS_EVERY=10 BASELINES=""
args=("$@")
for i in "${!args[@]}"; do
  case "${args[$i]}" in
    --chaos) CHAOS="${args[$((i + 1))]:-}" ;;
    --chaos=*) CHAOS="${args[$i]#--chaos=}" ;;
    --chaos-every) CHAOS_EVERY="${args[$((i + 1))]:-10}" ;;
    --chaos-every=*) CHAOS_EVERY="${args[$i]#--chaos-every=}" ;;
    --baseline) BASELINES="${args[$((i + 1))]:-}" ;;
    --baseline=*) BASELINES="${args[$i]#--baseline=}" ;;
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
wants() { [[ ",$BASELINES," == *",$1,"* ]]; }
wants pushpin && { command -v pushpin >/dev/null || apt_install pushpin; }
log "building (release)"
cargo build --release -q -p rh-api -p edge -p worker -p audit -p loadtest
mkdir -p target/lt

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
  if [ -n "${PUSHPIN_RUN:-}" ]; then rm -rf "$PUSHPIN_RUN"; fi
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
# RH_BENCH_BIN: another build's binaries (e.g. a before/after comparison); default this checkout's release build.
BIN="${RH_BENCH_BIN:-$PWD/target/release}"
ADDRS=()
# start NAME VAR=VALUE...: starts a release binary and prints its announced http://addr.
start() {
  local name="$1" out="$B/logs/$1.$RANDOM"; shift
  NAMES+=("$name")
  # shellcheck disable=SC2046 # nats_login prints two words, hex only
  local wrap=()
  # RH_BENCH_CALLGRIND=edge,worker: those run under callgrind (instruction counts, repeatable on a busy machine;
  # ~50× slower, so keep the scenario small); output in target/bench/callgrind.NAME.PID.
  [[ ",${RH_BENCH_CALLGRIND:-}," == *",$name,"* ]] &&
    wrap=(valgrind --tool=callgrind --callgrind-out-file="$B/callgrind.$name.%p")
  env $(nats_login "$name") "$@" "${wrap[@]}" "$BIN/$name" >"$out.out" 2>"$out.log" &
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
  RH_LIMIT_CONVERSATION_RESPONSES=0 RH_LIMIT_ORG_RESPONSES=0 \
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

# start_plain NAME COMMAND...: a process that prints `listening NAME http://ADDR` (no NATS login).
start_plain() {
  local name="$1" out="$B/logs/$1"; shift
  "$@" >"$out.out" 2>"$out.log" &
  PIDS+=("$!") NAMES+=("$name")
  LAST_PID=$!
  for _ in $(seq 1 100); do
    LAST_ADDR=$(sed -n "s/^listening $name http:\/\///p" "$out.out" 2>/dev/null | head -1)
    [ -n "$LAST_ADDR" ] && return
    kill -0 "$LAST_PID" 2>/dev/null || { cat "$out.log" >&2; die "$name exited"; }
    sleep 0.1
  done
  die "$name did not start"
}

# start_pushpin: a private Pushpin (loadtest/pushpin.conf.in: its own ports, runtime and log directories) routing
# `*` to the load tool's origin over WebSocket-over-HTTP.
start_pushpin() {
  local pp="$B/pushpin" ports http pub push sub cmd origin
  read -r http pub push sub cmd origin < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(("127.0.0.1", 0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
  mkdir -p "$pp/log"
  PUSHPIN_RUN=$(mktemp -d /tmp/rh-pushpin.XXXXXX)
  printf '* 127.0.0.1:%s,over_http\n' "$origin" >"$pp/routes"
  sed -e "s|@DIR@|$pp|g" -e "s|@RUN_DIR@|$PUSHPIN_RUN|g" -e "s|@HTTP_PORT@|$http|g" -e "s|@PUBLISH_PORT@|$pub|g" -e "s|@PUSH_PORT@|$push|g" \
    -e "s|@SUB_PORT@|$sub|g" -e "s|@COMMAND_PORT@|$cmd|g" -e "s|@SIG_KEY@|bench-$RANDOM$RANDOM|g" \
    loadtest/pushpin.conf.in >"$pp/pushpin.conf"
  pushpin --config "$pp/pushpin.conf" --merge-output >"$B/logs/pushpin.log" 2>&1 &
  PIDS+=("$!") NAMES+=(pushpin)
  LAST_PID=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$pub/publish/" -d '{"items":[]}' && ! port_is_free "$http"; then break; fi
    kill -0 "$LAST_PID" 2>/dev/null || { tail -20 "$B/logs/pushpin.log" >&2; die "pushpin exited"; }
    sleep 0.1
  done
  TOOL_ARGS+=(--pushpin-url "ws://127.0.0.1:$http/ws" --pushpin-publish-url "http://127.0.0.1:$pub/publish/"
    --pushpin-origin "127.0.0.1:$origin")
}

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
# CPU accounting: every process by name (the tool sums a name's processes and their children).
CPU_PIDS=()
for i in "${!PIDS[@]}"; do CPU_PIDS+=("${NAMES[$i]}=${PIDS[$i]}"); done
TOOL_ARGS=()
if wants bare; then
  start_plain bare-fanout "$BIN/bare-fanout"
  TOOL_ARGS+=(--bare-url "ws://$LAST_ADDR/ws")
  CPU_PIDS+=("bare-fanout=$LAST_PID")
fi
if wants pushpin; then
  start_pushpin
  CPU_PIDS+=("pushpin=$LAST_PID")
fi
log "stack up: api $API, edges ${WS[*]}, nats $NATS_URL, nats-ws ws://127.0.0.1:$WS_PORT"

join() { local IFS=,; echo "$*"; }
status=0
TIMEFORMAT="load tool: %Us user + %Ss system CPU in %Rs"
run_tool() {
  time env RH_LOADTEST_NATS_WS_PASSWORD="${NATS_PASS[admin]}" "$BIN/loadtest" --api "$API" --ws "$(join "${WS[@]}")" --edge-pid "$(join "${EDGE_PIDS[@]}")" \
    --nats-ws-url "ws://127.0.0.1:$WS_PORT" --nats-ws-user admin --cpu-pid "$(join "${CPU_PIDS[@]}")" \
    "${TOOL_ARGS[@]}" "$@"
}
if [ -n "$CHAOS" ]; then
  run_tool "$@" &
  TOOL_PID=$!
  chaos_loop "$TOOL_PID"
  wait "$TOOL_PID" || status=$?
elif [ "$QUICK" = 1 ]; then
  run_tool "$@" | tee "$B/quick.out" || status=$?
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
# mean NAME LABELS FILE...: count, mean and the buckets holding the p50 and p99 of a histogram (LABELS as printed, e.g.
# {subject="x"}, or '').
mean() {
  local name="$1" labels="$2" unit="${MEAN_UNIT:-ms}"; shift 2
  awk -v h="$name" -v l="$labels" -v u="$unit" '
    BEGIN { b = h "_bucket" (l == "" ? "{" : substr(l, 1, length(l) - 1) ",") "le=\"" }
    $1 == h"_sum"l { s += $2 } $1 == h"_count"l { c += $2 }
    index($1, b) == 1 { le = substr($1, length(b) + 1); sub(/".*/, "", le); n++; les[n] = le; cum[le] += $2 }
    END {
      if (c == 0) exit
      k = (u == "ms" ? 1000 : 1); p50 = "+Inf"; p99 = "+Inf"
      for (i = n; i >= 1; i--) { if (cum[les[i]] >= 0.99 * c) p99 = les[i]; if (cum[les[i]] >= 0.5 * c) p50 = les[i] }
      printf "%s%s: %d, mean %.1f %s, p50 <= %s %s, p99 <= %s %s\n", h, l, c, k * s / c, u,
        (p50 == "+Inf" ? p50 : k * p50), u, (p99 == "+Inf" ? p99 : k * p99), u
    }' "$@"
}
mean relayhub_edge_access_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_edge_catch_up_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_edge_live_lag_seconds '' "$B"/metrics/edge-*.prom
mean relayhub_edge_broker_lag_seconds '' "$B"/metrics/edge-*.prom
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
if [ -n "${RH_BENCH_CALLGRIND:-}" ]; then
  # After cleanup, so every process has exited and written its counts.
  cleanup
  for f in "$B"/callgrind.*; do
    [ -f "$f" ] && log "$(basename "$f"): $(sed -n 's/^summary: //p' "$f") instructions"
  done
fi
if [ "$QUICK" = 1 ]; then
  log "quick: key ratios (edge / baseline; throughput ×>1 and CPU ×<1 favour the edge):"
  grep -E '^(edge vs|result)' "$B/quick.out" >&2 || true
fi
exit $status
