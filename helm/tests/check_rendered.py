#!/usr/bin/env python3
"""Checks what the RelayHub chart promises on a `helm template` output (called by helm/test.sh).

Usage: check_rendered.py SET RENDERED.yaml — SET is one of the value sets test.sh writes (minimal, full, existing).
Prints one `ok <check>` or `FAIL <check>: <why>` line per check; test.sh counts them.
"""
import base64
import json
import sys

import yaml

SET, PATH = sys.argv[1], sys.argv[2]
DOCS = [d for d in yaml.safe_load_all(open(PATH)) if d]
FULL = "rh-relayhub"
# The in-chart NATS: the official NATS chart (a dependency), named after the release.
NATS = "rh-nats"
COMPONENTS = {"api": 8080, "edge": 8081, "worker": 9092, "audit": 9103}
# /metrics and the probes: on their own port for the api and the edge (check_security.py checks it is not public).
OPS_PORTS = {"api": 9091, "edge": 9094}


def check(name, cond, why=""):
    print(f"ok [{SET}] {name}" if cond else f"FAIL [{SET}] {name}: {why}")


def find(kind, name=None):
    return [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(kind, name):
    found = find(kind, name)
    return found[0] if len(found) == 1 else None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def pod_templates():
    for d in DOCS:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]


secret_names = {s["metadata"]["name"] for s in find("Secret")}
expect_existing = {"minimal": None, "full": None, "existing": "relayhub-secrets"}[SET]

# ---- the four services ---------------------------------------------------------------------------------------
for comp, port in COMPONENTS.items():
    dep = one("Deployment", f"{FULL}-{comp}")
    check(f"{comp}: one Deployment", dep is not None, "missing")
    if dep is None:
        continue
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = spec["containers"][0]
    check(f"{comp}: runs the `{comp}` binary", c.get("command") == [comp], c.get("command"))
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(f"{comp}: container port http = {port}", ports.get("http") == port, ports)
    ops_name, ops_port = ("ops", OPS_PORTS[comp]) if comp in OPS_PORTS else ("http", port)
    check(f"{comp}: ops port {ops_name} = {ops_port}", ports.get(ops_name) == ops_port, ports)
    lp, rp = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
    check(f"{comp}: liveness GET /healthz on its ops port", lp.get("path") == "/healthz" and lp.get("port") == ops_name, lp)
    check(f"{comp}: readiness GET /readyz on its ops port", rp.get("path") == "/readyz" and rp.get("port") == ops_name, rp)
    ann = pod["metadata"].get("annotations", {})
    check(
        f"{comp}: Prometheus scrape annotations for /metrics on {ops_port}",
        ann.get("prometheus.io/scrape") == "true"
        and ann.get("prometheus.io/port") == str(ops_port)
        and ann.get("prometheus.io/path") == "/metrics",
        ann,
    )
    res = c.get("resources", {})
    check(f"{comp}: resource requests and limits", res.get("requests") and res.get("limits"), res)
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    check(
        f"{comp}: non-root, read-only root fs, no privilege escalation",
        psc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
        and sc.get("allowPrivilegeEscalation") is False,
        (psc, sc),
    )
    env = env_of(c)
    check(f"{comp}: RH_NATS_URL set", "RH_NATS_URL" in env, sorted(env))
    listen_var = {"api": "RH_API_LISTEN", "edge": "RH_EDGE_LISTEN", "worker": "RH_WORKER_OPS_LISTEN",
                  "audit": "RH_AUDIT_OPS_LISTEN"}[comp]
    check(f"{comp}: {listen_var}=0.0.0.0:{port}", env.get(listen_var, {}).get("value") == f"0.0.0.0:{port}",
          env.get(listen_var))
    # Secrets come from a Secret, never as plain values; each reference points at a Secret that will exist.
    for var in ("RH_JWT_SECRET", "RH_DATABASE_URL", "RH_OPENAI_API_KEY"):
        if var in env:
            ref = env[var].get("valueFrom", {}).get("secretKeyRef")
            check(f"{comp}: {var} from a Secret", ref is not None and "value" not in env[var], env[var])
            if ref:
                target = ref["name"]
                ok = target in secret_names or target in (expect_existing, "relayhub-pg")
                check(f"{comp}: {var} refers to an existing Secret ({target})", ok, secret_names)
    needs = {"api": {"RH_DATABASE_URL", "RH_JWT_SECRET"}, "edge": {"RH_JWT_SECRET"},
             "worker": {"RH_PROVIDER", "RH_OPENAI_BASE_URL", "RH_OPENAI_API_KEY"}, "audit": {"RH_DATABASE_URL"}}[comp]
    check(f"{comp}: has {sorted(needs)}", needs <= set(env), sorted(env))
    if comp in ("edge", "worker"):
        check(f"{comp}: never gets the database URL", "RH_DATABASE_URL" not in env, sorted(env))

# replicas, strategies, grace periods
dep = {comp: one("Deployment", f"{FULL}-{comp}") or {"spec": {}} for comp in COMPONENTS}
check("api: 2 replicas", dep["api"]["spec"].get("replicas") == 2, dep["api"]["spec"].get("replicas"))
edge_hpa = one("HorizontalPodAutoscaler", f"{FULL}-edge")
if SET == "existing":
    check("edge: 3 replicas, no HPA (edge.autoscaling off)", dep["edge"]["spec"].get("replicas") == 3 and edge_hpa is None,
          dep["edge"]["spec"].get("replicas"))
else:
    check("edge: an HPA (3 to 20, CPU) targets the edge Deployment, no fixed replicas",
          edge_hpa is not None and edge_hpa["spec"]["scaleTargetRef"]["name"] == f"{FULL}-edge"
          and edge_hpa["spec"]["minReplicas"] == 3 and edge_hpa["spec"]["maxReplicas"] == 20
          and "replicas" not in dep["edge"]["spec"], edge_hpa)
    check("edge HPA: scales down one pod at a time, after a stabilization window",
          edge_hpa and edge_hpa["spec"]["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
          and edge_hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300, edge_hpa)
check("audit: exactly 1 replica, Recreate (never two writers)",
      dep["audit"]["spec"].get("replicas") == 1 and dep["audit"]["spec"].get("strategy", {}).get("type") == "Recreate",
      dep["audit"]["spec"])
hpa = one("HorizontalPodAutoscaler", f"{FULL}-worker")
if SET == "full":
    check("worker: HPA targets the worker Deployment, no fixed replicas",
          hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == f"{FULL}-worker"
          and "replicas" not in dep["worker"]["spec"], hpa)
else:
    check("worker: 2 replicas, no HPA", dep["worker"]["spec"].get("replicas") == 2 and hpa is None,
          dep["worker"]["spec"].get("replicas"))
edge_pod = dep["edge"]["spec"].get("template", {}).get("spec", {})
check("edge: graceful termination >= 30 s with a preStop pause",
      edge_pod.get("terminationGracePeriodSeconds", 0) >= 30
      and "preStop" in edge_pod.get("containers", [{}])[0].get("lifecycle", {}), edge_pod.get("terminationGracePeriodSeconds"))
worker_pod = dep["worker"]["spec"].get("template", {}).get("spec", {})
check("worker: graceful termination >= 60 s (finish jobs)",
      worker_pod.get("terminationGracePeriodSeconds", 0) >= 60, worker_pod.get("terminationGracePeriodSeconds"))

# ---- services, PDBs, selectors -------------------------------------------------------------------------------
edge_svc = one("Service", f"{FULL}-edge")
check("edge Service: no session affinity", edge_svc and edge_svc["spec"].get("sessionAffinity") == "None", edge_svc)
if SET != "full":
    check("edge Service: type LoadBalancer", edge_svc and edge_svc["spec"]["type"] == "LoadBalancer", edge_svc)
for comp in ("api", "edge"):
    pdb = one("PodDisruptionBudget", f"{FULL}-{comp}")
    labels = dep[comp]["spec"].get("template", {}).get("metadata", {}).get("labels", {})
    check(f"{comp}: PodDisruptionBudget selecting its pods",
          pdb is not None and labels_match(pdb["spec"]["selector"]["matchLabels"], labels), pdb)
for svc in find("Service"):
    sel = svc["spec"].get("selector", {})
    matches = [t for _, t in pod_templates() if labels_match(sel, t["metadata"].get("labels", {}))]
    check(f"Service {svc['metadata']['name']}: selector matches pods", len(matches) == 1, sel)
    if matches:
        names = {p.get("name") for c in matches[0]["spec"]["containers"] for p in c.get("ports", [])}
        for p in svc["spec"]["ports"]:
            check(f"Service {svc['metadata']['name']}: targetPort {p['targetPort']} exists", p["targetPort"] in names, names)
for d, t in pod_templates():
    check(f"{d['kind']} {d['metadata']['name']}: selector matches its template",
          d["kind"] == "Job" or labels_match(d["spec"]["selector"]["matchLabels"], t["metadata"]["labels"]))

# ---- per value set -------------------------------------------------------------------------------------------
api_env = env_of(dep["api"]["spec"]["template"]["spec"]["containers"][0]) if "template" in dep["api"]["spec"] else {}
nats_url = api_env.get("RH_NATS_URL", {}).get("value")
if SET == "minimal":
    s = one("Secret", FULL)
    check("chart Secret created", s is not None)
    if s:
        jwt = base64.b64decode(s["data"]["jwt-secret"]).decode()
        db = base64.b64decode(s["data"]["database-url"]).decode()
        check("generated JWT secret is 48 characters", len(jwt) == 48, len(jwt))
        check("database URL stored in the Secret", db == "postgres://relayhub:secret@postgres:5432/relayhub", db)
        check("no OpenAI key stored when none given", "openai-api-key" not in s["data"], s["data"].keys())
    check("external NATS by default", nats_url == "nats://nats:4222", nats_url)
    check("no in-chart NATS or ingress by default", not find("StatefulSet") and not find("Ingress"))
    check("streams with 1 replica on an external NATS by default",
          api_env.get("RH_STREAM_REPLICAS", {}).get("value") == "1", api_env.get("RH_STREAM_REPLICAS"))
    check("api serves the web client from /srv/web", api_env.get("RH_WEB_DIR", {}).get("value") == "/srv/web")
    check("no RH_PUBLIC_WS_URL without ingress or publicWsUrl", "RH_PUBLIC_WS_URL" not in api_env)
elif SET == "full":
    sts = one("StatefulSet", NATS)
    check("in-chart NATS (the official chart): StatefulSet with 3 servers, nats-server 2.15.1",
          sts and sts["spec"]["replicas"] == 3
          and sts["spec"]["template"]["spec"]["containers"][0]["image"] == "nats:2.15.1-alpine", sts and sts["spec"]["replicas"])
    conf = (one("ConfigMap", f"{NATS}-config") or {}).get("data", {}).get("nats.conf", "")
    check("nats.conf: JetStream, cluster with 3 routes, limits from nats/nats-server.conf",
          '"jetstream": {' in conf and conf.count(":6222") == 3 and '"max_payload": 1MB' in conf
          and '"max_pending": 64MB' in conf and '"max_file_store": 20Gi' in conf and '"write_deadline": "10s"' in conf, conf)
    spread = sts and sts["spec"]["template"]["spec"].get("topologySpreadConstraints", [])
    check("in-chart NATS: one server per node (hard spread)",
          spread and spread[0]["topologyKey"] == "kubernetes.io/hostname" and spread[0]["whenUnsatisfiable"] == "DoNotSchedule", spread)
    check("services use the in-chart NATS Service",
          nats_url == f"nats://{NATS}:4222" and one("Service", NATS) is not None, nats_url)
    pdb = one("PodDisruptionBudget", NATS)
    check("in-chart NATS: PodDisruptionBudget", pdb is not None)
    check("the api creates the streams with 3 replicas", api_env.get("RH_STREAM_REPLICAS", {}).get("value") == "3",
          api_env.get("RH_STREAM_REPLICAS"))
    check("no hook Job (the api creates replicated streams itself)", not find("Job"))
    ing = one("Ingress", FULL)
    paths = {p["path"]: p["backend"]["service"]["name"] for r in (ing or {}).get("spec", {}).get("rules", [])
             for p in r["http"]["paths"]}
    check("ingress: /ws → edge, / → api", paths == {"/ws": f"{FULL}-edge", "/": f"{FULL}-api"}, paths)
    ann = (ing or {}).get("metadata", {}).get("annotations", {})
    check("ingress: nginx WebSocket timeouts", int(ann.get("nginx.ingress.kubernetes.io/proxy-read-timeout", 0)) >= 3600, ann)
    check("api tells browsers wss://<ingress host>/ws",
          api_env.get("RH_PUBLIC_WS_URL", {}).get("value") == "wss://chat.example.com/ws", api_env.get("RH_PUBLIC_WS_URL"))
    db_ref = api_env.get("RH_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check("database URL from postgres.existingSecret", db_ref == {"name": "relayhub-pg", "key": "url"}, db_ref)
    s = one("Secret", FULL)
    check("chart Secret holds JWT + OpenAI key but not the database URL",
          s and set(s["data"]) == {"jwt-secret", "openai-api-key"}, s and s["data"].keys())
    img = dep["api"]["spec"]["template"]["spec"]["containers"][0]["image"]
    check("image from values", img == "registry.example.com/relayhub:1.2.3", img)
    w_env = env_of(dep["worker"]["spec"]["template"]["spec"]["containers"][0])
    check("worker: openai provider configured",
          w_env["RH_PROVIDER"]["value"] == "openai" and w_env["RH_OPENAI_BASE_URL"]["value"] == "http://vllm:8000/v1"
          and w_env.get("RH_OPENAI_MODELS", {}).get("value") == "llama-3.1-8b", w_env)
elif SET == "existing":
    check("no Secret created when secrets.existingSecret and nats.auth.existingSecret are set", not find("Secret"),
          secret_names)
    conf = (one("ConfigMap", f"{NATS}-config") or {}).get("data", {}).get("nats.conf", "")
    sts = one("StatefulSet", NATS)
    check("single-node NATS: 1 replica, no cluster block", sts and sts["spec"]["replicas"] == 1 and '"cluster"' not in conf)
    check("streams with 1 replica on a single node", api_env.get("RH_STREAM_REPLICAS", {}).get("value") == "1")
    check("api without the web client", "RH_WEB_DIR" not in api_env)
    check("publicWsUrl passed through", api_env.get("RH_PUBLIC_WS_URL", {}).get("value") == "wss://ws.example.com/ws")

# ---- monitoring: dashboard, alert rules, ServiceMonitor ------------------------------------------------------
dash = one("ConfigMap", f"{FULL}-dashboard")
check("Grafana dashboard ConfigMap labelled for the sidecar (grafana_dashboard=1), valid JSON",
      dash is not None and dash["metadata"]["labels"].get("grafana_dashboard") == "1"
      and json.loads(dash["data"]["relayhub.json"])["uid"] == "relayhub-overview", dash and dash["metadata"])
rule, monitor = one("PrometheusRule", FULL), one("ServiceMonitor", FULL)
if SET == "full":
    check("PrometheusRule with the alert rules", rule is not None and len(rule["spec"]["groups"]) >= 4
          and all(r.get("alert") and r.get("expr") for g in rule["spec"]["groups"] for r in g["rules"]), rule)
    check("ServiceMonitor scraping /metrics on the `metrics` port",
          monitor is not None and monitor["spec"]["endpoints"][0]["port"] == "metrics", monitor)
    selected = [s for s in find("Service") if labels_match(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    expected_ops = {"api": "ops", "edge": "ops", "worker": "http", "audit": "http"}
    check("ServiceMonitor selects one headless metrics Service per component, each on its ops port",
          sorted(s["metadata"]["name"] for s in selected) == sorted(f"{FULL}-{c}-metrics" for c in COMPONENTS)
          and all(s["spec"]["clusterIP"] == "None"
                  and s["spec"]["ports"][0]["targetPort"] == expected_ops[s["metadata"]["name"].split("-")[-2]] for s in selected),
          [(s["metadata"]["name"], s["spec"]["ports"]) for s in selected])
    check("NATS exporter PodMonitor (the NATS chart's) when asked", one("PodMonitor", NATS) is not None)
else:
    check("no PrometheusRule or ServiceMonitor by default (they need the prometheus-operator CRDs)",
          rule is None and monitor is None)
