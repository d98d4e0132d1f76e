#!/usr/bin/env python3
"""Offline checks of the observability files that have no checker of their own here.

Used by scripts/check-deploy.sh (run with the tools' virtualenv, which has PyYAML):

  otel CONFIG
      The OpenTelemetry Collector config is structurally sound: known component types,
      every component a pipeline names is defined, connectors both feed and are fed,
      memory_limiter first and batch present in every pipeline. (The collector's own
      `validate` needs its binary, which no allowed registry ships.)

  dashboard DASHBOARD PROVISIONING_DIR RULES_OUT
      The Grafana dashboard is valid JSON with unique panel ids, each panel's data
      source is a dashboard variable or a provisioned uid, every latency panel links to
      Jaeger; every PromQL expression is written to RULES_OUT as a recording rule so
      that `promtool check rules` parses it (Grafana variables replaced by values).

  runbooks RULES_FILE...
      Every alert's `runbook_url` annotation is `docs/runbooks/<alert>.md` and that page
      exists, titled with the alert's name; every page there belongs to an alert of
      these files (README.md apart).

  metric-names SCRAPE RULES_DIR DASHBOARD
      Informational: which metric names the rules and the dashboard use are present
      in a scrape (a service exposes a series only after its first call).

Exit status 0 when sound, 1 with one line per problem otherwise.
"""

import json
import pathlib
import re
import sys

import yaml

# Component types of the contrib distribution that this repository may use. A name
# outside these (a typo such as "otpl") is an error.
OTEL_TYPES = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "jaeger", "zipkin", "filelog"},
    "processors": {"memory_limiter", "batch", "resource", "attributes", "filter",
                   "tail_sampling", "probabilistic_sampler", "transform", "k8sattributes",
                   "resourcedetection"},
    "exporters": {"otlp", "otlphttp", "otlp_grpc", "otlp_http", "debug", "prometheus",
                  "prometheusremotewrite", "file"},
    "connectors": {"spanmetrics", "servicegraph", "forward", "count"},
    "extensions": {"health_check", "pprof", "zpages", "basicauth", "bearertokenauth"},
}
SIGNALS = {"traces", "metrics", "logs"}


def kind_of(component_id):
    return component_id.split("/", 1)[0]


def check_otel(path):
    problems = []
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    if not isinstance(doc, dict):
        return [f"{path}: not a mapping"]
    for key in doc:
        if key not in set(OTEL_TYPES) | {"service"}:
            problems.append(f"{path}: unknown top-level key '{key}'")
    defined = {}
    for section, types in OTEL_TYPES.items():
        for cid in (doc.get(section) or {}):
            if kind_of(cid) not in types:
                problems.append(f"{path}: {section}.{cid}: unknown component type '{kind_of(cid)}'")
            defined.setdefault(section, set()).add(cid)
    service = doc.get("service") or {}
    for key in service:
        if key not in {"extensions", "pipelines", "telemetry"}:
            problems.append(f"{path}: service: unknown key '{key}'")
    for ext in service.get("extensions") or []:
        if ext not in defined.get("extensions", set()):
            problems.append(f"{path}: service.extensions names undefined extension '{ext}'")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append(f"{path}: service.pipelines is empty")
    connectors = defined.get("connectors", set())
    fed, feeding = set(), set()
    for name, pipe in pipelines.items():
        where = f"{path}: pipeline {name}"
        if kind_of(name) not in SIGNALS:
            problems.append(f"{where}: signal must be one of {sorted(SIGNALS)}")
        pipe = pipe or {}
        for key in pipe:
            if key not in {"receivers", "processors", "exporters"}:
                problems.append(f"{where}: unknown key '{key}'")
        for rec in pipe.get("receivers") or []:
            if rec in connectors:
                feeding.add(rec)
            elif rec not in defined.get("receivers", set()):
                problems.append(f"{where}: undefined receiver '{rec}'")
        for exp in pipe.get("exporters") or []:
            if exp in connectors:
                fed.add(exp)
            elif exp not in defined.get("exporters", set()):
                problems.append(f"{where}: undefined exporter '{exp}'")
        processors = pipe.get("processors") or []
        for proc in processors:
            if proc not in defined.get("processors", set()):
                problems.append(f"{where}: undefined processor '{proc}'")
        if not pipe.get("receivers") or not pipe.get("exporters"):
            problems.append(f"{where}: needs receivers and exporters")
        if not processors or kind_of(processors[0]) != "memory_limiter":
            problems.append(f"{where}: memory_limiter must be the first processor")
        if not any(kind_of(p) == "batch" for p in processors):
            problems.append(f"{where}: no batch processor")
    for conn in connectors:
        if conn not in fed or conn not in feeding:
            problems.append(f"{path}: connector '{conn}' must be an exporter of one pipeline "
                            "and a receiver of another")
    return problems


# Values Grafana would put in place of its variables, so that promtool can parse.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${__range}": "1h",
    "$service": "users|orders|gateway",
    "${service}": "users|orders|gateway",
}


def panels_of(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def provisioned_uids(provisioning_dir):
    uids = {}
    for file in sorted(pathlib.Path(provisioning_dir, "datasources").glob("*.y*ml")):
        for ds in (yaml.safe_load(file.read_text()) or {}).get("datasources", []):
            uids[ds.get("uid")] = ds.get("type")
    return uids


def check_dashboard(path, provisioning_dir, rules_out):
    problems = []
    try:
        dashboard = json.loads(pathlib.Path(path).read_text())
    except json.JSONDecodeError as error:
        return [f"{path}: invalid JSON: {error}"]
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"{path}: missing '{key}'")
    uids = provisioned_uids(provisioning_dir)
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    for name, var in variables.items():
        if var.get("type") == "datasource":
            value = var.get("current", {}).get("value")
            if value not in uids or uids[value] != var.get("query"):
                problems.append(f"{path}: variable ${name} defaults to '{value}', not a provisioned "
                                f"{var.get('query')} data source ({sorted(k for k in uids if k)})")

    def datasource_ok(ds):
        uid = (ds or {}).get("uid", "")
        match = re.fullmatch(r"\$\{?(\w+)\}?", uid or "")
        if match:
            return match.group(1) in variables
        return uid in uids

    ids, rules = set(), []
    for panel in panels_of(dashboard):
        pid, title = panel.get("id"), panel.get("title", "?")
        where = f"{path}: panel {pid} '{title}'"
        if pid in ids:
            problems.append(f"{where}: duplicate id")
        ids.add(pid)
        if "gridPos" not in panel:
            problems.append(f"{where}: no gridPos")
        if panel.get("type") == "row":
            continue
        if not datasource_ok(panel.get("datasource")):
            problems.append(f"{where}: data source {panel.get('datasource')} is neither a variable "
                            "nor provisioned")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        for target in targets:
            if not datasource_ok(target.get("datasource")):
                problems.append(f"{where}: query {target.get('refId')}: unknown data source")
            expr = target.get("expr", "")
            if not expr.strip():
                problems.append(f"{where}: query {target.get('refId')}: empty expr")
                continue
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            left = re.findall(r"\$\{?\w+", expr)
            if left:
                problems.append(f"{where}: query {target.get('refId')}: unknown variables {left}")
            rules.append({"record": f"dashboard:panel_{pid}_{target.get('refId', 'X')}", "expr": expr})
        if "Duration" in title:
            links = panel.get("fieldConfig", {}).get("defaults", {}).get("links", [])
            if not any("jaeger" in link.get("url", "").lower() for link in links):
                problems.append(f"{where}: a latency panel without a data link to Jaeger traces")
    pathlib.Path(rules_out).write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-expressions", "rules": rules}]}, sort_keys=False))
    return problems


ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNBOOKS = "docs/runbooks"


def check_runbooks(*rule_files):
    problems = []
    alerts = set()
    for file in rule_files:
        for group in (yaml.safe_load(pathlib.Path(file).read_text()) or {}).get("groups", []):
            for rule in group.get("rules", []):
                name = rule.get("alert")
                if not name:
                    continue
                alerts.add(name)
                want = f"{RUNBOOKS}/{name}.md"
                url = (rule.get("annotations") or {}).get("runbook_url")
                if url != want:
                    problems.append(f"{file}: {name}: runbook_url is {url!r}, not {want!r}")
                page = ROOT / want
                if not page.is_file():
                    problems.append(f"{file}: {name}: no runbook {want}")
                elif not page.read_text().startswith(f"# {name}\n"):
                    problems.append(f"{want}: does not start with '# {name}'")
    for page in sorted((ROOT / RUNBOOKS).glob("*.md")):
        if page.name != "README.md" and page.stem not in alerts:
            problems.append(f"{RUNBOOKS}/{page.name}: no alert named {page.stem}")
    return problems


def metric_names_in(text):
    """Metric names used as selectors (`name{...}`); recorded `a:b:c` names excluded."""
    return set(re.findall(r"(?<![:\w])([a-z_][a-z0-9_]*)\{", text))


def check_metric_names(scrape, rules_dir, dashboard):
    used = set()
    for file in pathlib.Path(rules_dir).glob("*.yml"):
        used |= metric_names_in(file.read_text())
    used |= metric_names_in(pathlib.Path(dashboard).read_text())
    present = set()
    for line in pathlib.Path(scrape).read_text().splitlines():
        if line and not line.startswith("#"):
            present.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    for name in sorted(used):
        state = "present" if name in present else "absent "
        print(f"  {state} {name}")
    return []


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    if command == "otel" and len(args) == 1:
        problems = check_otel(*args)
    elif command == "dashboard" and len(args) == 3:
        problems = check_dashboard(*args)
    elif command == "runbooks" and args:
        problems = check_runbooks(*args)
    elif command == "metric-names" and len(args) == 3:
        problems = check_metric_names(*args)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
