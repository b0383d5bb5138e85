#!/usr/bin/env python3
"""Checks the chart's closed bus on a `helm template` output (called by helm/test.sh, like check_rendered.py):
each service's NATS login from a Secret, the NATS authorization and its passwords, TLS, the NetworkPolicies and
the ops ports. Usage: check_security.py SET RENDERED.yaml AUTH_CONF — prints `ok ...` / `FAIL ...: why` lines.
"""
import base64
import re
import sys

import yaml

SET, PATH, AUTH_CONF = sys.argv[1], sys.argv[2], sys.argv[3]
DOCS = [d for d in yaml.safe_load_all(open(PATH)) if d]
FULL = "rh-relayhub"
SERVICES = ("api", "edge", "worker", "audit")
USERS = SERVICES + ("admin",)
# The in-chart NATS is the official NATS chart (named after the release); the passwords' Secret is named after the
# release too, because that chart's values refer to it.
NATS = "rh-nats"
NATS_SECRET = {"minimal": "rh-nats-auth", "full": "rh-nats-auth", "existing": "relayhub-nats"}[SET]
PG_PORT = 5432


def check(name, cond, why=""):
    print(f"ok [{SET}] {name}" if cond else f"FAIL [{SET}] {name}: {why}")


def one(kind, name):
    found = [d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    return found[0] if len(found) == 1 else None


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def secret_ref(var):
    return (var or {}).get("valueFrom", {}).get("secretKeyRef", {})


# ---- every service logs in as itself, with a password from the NATS Secret ----------------------------------
for comp in SERVICES:
    dep = one("Deployment", f"{FULL}-{comp}")
    if not dep:
        check(f"{comp}: Deployment", False, "missing")
        continue
    env = env_of(dep["spec"]["template"]["spec"]["containers"][0])
    check(f"{comp}: NATS user {comp}", env.get("RH_NATS_USER", {}).get("value") == comp, env.get("RH_NATS_USER"))
    ref = secret_ref(env.get("RH_NATS_PASSWORD"))
    check(f"{comp}: NATS password from Secret {NATS_SECRET}, key {comp}-password, never a plain value",
          ref == {"name": NATS_SECRET, "key": f"{comp}-password"} and "value" not in env.get("RH_NATS_PASSWORD", {}),
          env.get("RH_NATS_PASSWORD"))
    others = [k for k, v in env.items() if "PASSWORD" in k and k != "RH_NATS_PASSWORD"]
    check(f"{comp}: no other service's password", not others, others)

secret = one("Secret", NATS_SECRET)
if SET == "existing":
    check("nats.auth.existingSecret: no NATS Secret created", secret is None)
else:
    check("NATS Secret created", secret is not None)
    if secret:
        pw = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        check("NATS Secret: one password per user", set(pw) == {f"{u}-password" for u in USERS}, sorted(pw))
        check("NATS passwords: random, long, distinct, starting with a letter",
              len(set(pw.values())) == len(pw) and all(len(p) >= 32 and p[0].isalpha() for p in pw.values()))

# ---- the NATS server: authorization from files/nats-auth.conf, passwords from the Secret ----------------------
sts = one("StatefulSet", NATS)
cm = one("ConfigMap", f"{NATS}-config")
auth_cm = one("ConfigMap", "rh-nats-authorization")
if SET == "minimal":
    check("external NATS: no in-chart server", sts is None and cm is None and auth_cm is None)
else:
    conf, auth = cm["data"].get("nats.conf", ""), (auth_cm or {}).get("data", {}).get("auth.conf", "")
    check("nats.conf includes the authorization", "include ../nats-auth/auth.conf;" in conf, conf)
    pod = sts["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0].get("volumeMounts", [])}
    check("NATS servers mount the authorization ConfigMap at /etc/nats-auth",
          vols.get(mounts.get("/etc/nats-auth"), {}).get("configMap", {}).get("name") == "rh-nats-authorization", mounts)
    check("auth.conf is nats/auth.conf", auth.strip() == open(AUTH_CONF).read().strip())
    users = dict(re.findall(r"user: (\w+)\s+password: \$(RH_NATS_\w+_PASSWORD)", auth))
    check("auth.conf: one user per service and admin, passwords from the environment",
          users == {u: f"RH_NATS_{u.upper()}_PASSWORD" for u in USERS}, users)
    check("auth.conf: no blanket JetStream or inbox rights", "$JS.API.>" not in auth and '"_INBOX.>"' not in auth)
    blocks = dict(re.findall(r"user: (\w+)(.*?)(?=\n    \{|\Z)", auth, re.S))
    check("auth.conf: only the edge publishes rh.api.*",
          [u for u, b in blocks.items() if '"rh.api.*"' in b] == ["edge"], [u for u, b in blocks.items() if "rh.api" in b])
    publishes = {u: b.split("subscribe")[0] for u, b in blocks.items()}
    check("auth.conf: only the api publishes rh.ctl.*", [u for u, p in publishes.items() if '"rh.ctl.' in p] == ["api"])
    # The audit writer publishes the sidebar's `activity` (responding or not) once it has written an answer's end.
    check("auth.conf: only the api and the audit writer publish rh.user.*.inbox",
          sorted(u for u, p in publishes.items() if '"rh.user.*.inbox"' in p) == ["api", "audit"],
          [u for u, p in publishes.items() if '"rh.user.*.inbox"' in p])
    env = env_of(sts["spec"]["template"]["spec"]["containers"][0])
    refs = {u: secret_ref(env.get(f"RH_NATS_{u.upper()}_PASSWORD")) for u in USERS}
    check("NATS server: every user's password from the Secret",
          refs == {u: {"name": NATS_SECRET, "key": f"{u}-password"} for u in USERS}, refs)
    tls = '"tls": {' in conf
    check(f"NATS TLS {'on' if SET == 'full' else 'off'}", tls == (SET == "full"), conf)
    if SET == "full":
        check("NATS route TLS: routes use tls://, verified with the CA",
              conf.count("tls://") == 3 and conf.count('"ca_file": "/etc/nats-ca-cert/ca.crt"') == 2, conf)

# ---- TLS to NATS: the services verify the server ------------------------------------------------------------
if SET == "full":
    for comp in SERVICES:
        spec = one("Deployment", f"{FULL}-{comp}")["spec"]["template"]["spec"]
        env = env_of(spec["containers"][0])
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        check(f"{comp}: verifies NATS with the TLS Secret's ca.crt",
              env.get("RH_NATS_TLS_CA", {}).get("value", "").endswith("/ca.crt")
              and vols.get("nats-tls", {}).get("secret", {}).get("secretName") == "relayhub-nats-ca", env.get("RH_NATS_TLS_CA"))

# ---- TLS to PostgreSQL: the api and the audit writer verify the server with the CA Secret; nobody else has it ----
for comp in SERVICES:
    spec = one("Deployment", f"{FULL}-{comp}")["spec"]["template"]["spec"]
    env = env_of(spec["containers"][0])
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    pg_tls = vols.get("postgres-tls", {}).get("secret", {})
    if SET == "full" and comp in ("api", "audit"):
        check(f"{comp}: PostgreSQL over TLS only, verified with postgres.tls.caSecret",
              env.get("RH_DATABASE_TLS", {}).get("value") == "true"
              and env.get("RH_DATABASE_TLS_CA", {}).get("value", "").endswith("/ca.crt")
              and pg_tls.get("secretName") == "relayhub-pg-ca"
              and pg_tls.get("items") == [{"key": "ca.crt", "path": "ca.crt"}], (env.get("RH_DATABASE_TLS_CA"), pg_tls))
    else:
        check(f"{comp}: no PostgreSQL TLS settings", "RH_DATABASE_TLS" not in env and not pg_tls, pg_tls)

# ---- NetworkPolicies -----------------------------------------------------------------------------------------
for comp in SERVICES:
    np = one("NetworkPolicy", f"{FULL}-{comp}")
    if not np:
        check(f"{comp}: NetworkPolicy", False, "missing")
        continue
    spec = np["spec"]
    check(f"{comp}: NetworkPolicy limits ingress and egress", set(spec.get("policyTypes", [])) == {"Ingress", "Egress"})
    egress = spec.get("egress") or []
    check(f"{comp}: every egress rule names its ports (no allow-all)", all(r.get("ports") for r in egress), egress)
    ports = {p["port"] for r in egress for p in r.get("ports", [])}
    reaches_pg = PG_PORT in ports
    check(f"{comp}: {'reaches' if comp in ('api', 'audit') else 'cannot reach'} PostgreSQL",
          reaches_pg == (comp in ("api", "audit")), sorted(ports))
    ops = {"api": 9091, "edge": 9094, "worker": 9092, "audit": 9103}[comp]
    open_ops = [r for r in spec.get("ingress") or [] if any(p["port"] == ops for p in r.get("ports", []))]
    check(f"{comp}: ops port {ops} only from networkPolicy.opsFrom",
          all(r.get("from") for r in open_ops) and (bool(open_ops) == (SET == "full")), open_ops)
nats_np = one("NetworkPolicy", f"{FULL}-nats")
if SET != "minimal":
    rules = (nats_np or {}).get("spec", {}).get("ingress", [])
    client = [r for r in rules if any(p["port"] == 4222 for p in r.get("ports", []))]
    check("NATS: clients only from this release's pods",
          len(client) == 1 and client[0].get("from") == [{"podSelector": {"matchLabels": {
              "app.kubernetes.io/instance": "rh", "app.kubernetes.io/part-of": "relayhub"}}}], client)
    check("NATS: no rule open to everyone", all(r.get("from") for r in rules), rules)
    nats_labels = (sts or {}).get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    check("NATS NetworkPolicy selects the NATS chart's pods",
          bool(nats_np) and all(nats_labels.get(k) == v for k, v in nats_np["spec"]["podSelector"]["matchLabels"].items()),
          nats_labels)

# ---- /metrics on an ops port nothing public routes -----------------------------------------------------------
for comp, ops_var in (("api", "RH_API_OPS_LISTEN"), ("edge", "RH_EDGE_OPS_LISTEN")):
    dep = one("Deployment", f"{FULL}-{comp}")
    env = env_of(dep["spec"]["template"]["spec"]["containers"][0])
    check(f"{comp}: ops listener apart from the public port", env.get(ops_var, {}).get("value", "").startswith("0.0.0.0:"))
    svc = one("Service", f"{FULL}-{comp}")
    check(f"{comp}: its Service routes only the public port", [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"])
ing = one("Ingress", FULL)
if ing:
    backends = {p["backend"]["service"]["port"].get("name") for r in ing["spec"]["rules"] for p in r["http"]["paths"]}
    check("ingress: routes only the public ports", backends == {"http"}, backends)
