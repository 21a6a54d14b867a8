#!/usr/bin/env python3
"""Structural checks of Conveyor's operations files, run by scripts/check-ops.sh.

    check_ops.py compose       docker-compose.yml, conveyor.env.example
    check_ops.py dockerfile    Dockerfile, .dockerignore
    check_ops.py metrics FILE...
                               every conveyor_* name in FILE is a metric that the
                               Rust source under crates/ registers
    check_ops.py dashboard OUT config/grafana/conveyor.json: structure, data source,
                               metric names; writes its PromQL expressions to OUT
                               as recording rules for `promtool check rules`

Run from the repository root. Prints what it checked; exits 1 on any failure.
Needs PyYAML and Python 3.11+ (tomllib).
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

COMPOSE = Path("docker-compose.yml")
ENV_EXAMPLE = Path("conveyor.env.example")
CONFIG = Path("config/conveyor.toml")
DOCKERFILE = Path("Dockerfile")
DOCKERIGNORE = Path(".dockerignore")
DASHBOARD = Path("config/grafana/conveyor.json")
CRATES = Path("crates")

BINARIES = ["conveyor-api", "conveyor-worker", "conveyor-scheduler", "conveyorctl"]
# Queues that need no worker service of their own in docker-compose.yml.
NON_DOMAIN_QUEUES = {"diagnostics"}
WORKER_METRICS_ADDR = "0.0.0.0:9101"
SECRET_VARS = re.compile(r"^(CONVEYOR_ADMIN_TOKENS|CONVEYOR_VIEWER_TOKENS|[A-Z0-9_]*_API_KEY)$")

# Keys of a compose service that this project uses or may reasonably use; anything
# else is most likely a typo (which Compose itself would reject).
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes",
    "ports", "expose", "depends_on", "healthcheck", "restart", "stop_grace_period",
    "stop_signal", "user", "working_dir", "networks", "labels", "logging", "deploy",
    "init", "profiles", "container_name", "hostname", "read_only", "tmpfs", "cap_add",
    "cap_drop", "security_opt", "ulimits", "shm_size", "pull_policy", "extra_hosts",
    "secrets", "configs", "platform", "develop", "mem_limit", "cpus",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
TOP_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets", "include"}


class Checks:
    """Collects failures. Prints one line per section (every check with
    CHECK_OPS_VERBOSE=1) and every failure with its detail."""

    def __init__(self, title):
        self.title = title
        self.failures = []
        self.passed = 0
        self.verbose = os.environ.get("CHECK_OPS_VERBOSE") == "1"
        self._section, self._sec_pass, self._sec_fail = None, 0, 0

    def section(self, name):
        self._close()
        self._section, self._sec_pass, self._sec_fail = name, 0, 0

    def _close(self):
        if self._section is not None and (self._sec_pass or self._sec_fail):
            status = "ok  " if not self._sec_fail else "FAIL"
            print(f"    {status}  {self._section} ({self._sec_pass} of "
                  f"{self._sec_pass + self._sec_fail} checks passed)")
        self._section = None

    def ok(self, cond, what, detail=""):
        if cond:
            self.passed += 1
            self._sec_pass += 1
            if self.verbose:
                print(f"          ok    {what}")
        else:
            self.failures.append(what)
            self._sec_fail += 1
            print(f"          FAIL  {what}" + (f": {detail}" if detail else ""))
        return bool(cond)

    def finish(self):
        self._close()
        if self.failures:
            print(f"  {self.title}: {len(self.failures)} of {self.passed + len(self.failures)} checks FAILED")
            return 1
        print(f"  {self.title}: all {self.passed} checks passed")
        return 0


# --------------------------------------------------------------------------------
# Metric names registered in the Rust source
# --------------------------------------------------------------------------------

def registered_metrics():
    """(names, histograms): the conveyor_* metric names registered under crates/.

    A metric is registered in a source file that uses the prometheus crate; its name
    is a string literal there. Tests are not looked at.
    """
    names, histograms, files = set(), set(), []
    for path in sorted(CRATES.glob("*/src/**/*.rs")):
        text = path.read_text(encoding="utf-8")
        if not re.search(r"\bprometheus::|\buse prometheus\b", text):
            continue
        found = set(re.findall(r'"(conveyor_[a-z0-9_]+)"', text))
        if found:
            files.append(str(path))
        names |= found
        histograms |= set(re.findall(r'HistogramOpts::new\(\s*"(conveyor_[a-z0-9_]+)"', text))
    return names, histograms, files


def series_names(names, histograms):
    """The series names a query may use: histograms only as _bucket, _sum, _count."""
    out = set(names) - set(histograms)
    for h in histograms:
        out |= {h + "_bucket", h + "_sum", h + "_count"}
    return out


def metric_refs(text):
    return set(re.findall(r"conveyor_[a-z0-9_]+", text))


def check_names(c, label, text, valid):
    refs = metric_refs(text)
    unknown = sorted(refs - valid)
    c.ok(not unknown, f"{label}: the {len(refs)} metric names it uses are registered in crates/",
         "not registered: " + ", ".join(unknown))
    return refs


# --------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------

def env_map(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


def volume_mounts(service):
    """[(source, target, is_named)] of a service's volumes."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            src, dst = v.get("source", ""), v.get("target", "")
            named = v.get("type", "volume") == "volume" and bool(src)
        else:
            parts = str(v).split(":")
            if len(parts) == 1:
                src, dst, named = "", parts[0], False
            else:
                src, dst = parts[0], parts[1]
                named = not src.startswith((".", "/", "~", "$"))
        out.append((src, dst, named))
    return out


def command_list(service):
    cmd = service.get("command")
    if isinstance(cmd, str):
        return cmd.split()
    return [str(x) for x in (cmd or [])]


def healthcheck_text(service):
    hc = service.get("healthcheck") or {}
    test = hc.get("test")
    if isinstance(test, list):
        return " ".join(str(x) for x in test)
    return str(test or "")


def seconds(duration):
    """Compose duration (e.g. 1m30s, 45s) in seconds."""
    total, matched = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)", str(duration)):
        matched = True
        total += float(num) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
    return total if matched else None


def git_ignored(path):
    try:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", str(path)],
                              check=False).returncode == 0
    except OSError:
        return None


def check_compose():
    c = Checks(str(COMPOSE))
    print(f"  {COMPOSE}:")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    c.section("parses; top-level and service keys are Compose keys; health checks well-formed")
    c.ok(isinstance(doc, dict) and isinstance(doc.get("services"), dict), "parses as YAML with a services mapping")
    services = doc.get("services") or {}
    extra = sorted(k for k in doc if k not in TOP_KEYS and not str(k).startswith("x-"))
    c.ok(not extra, "top-level keys are Compose keys (or x- extensions)", ", ".join(extra))

    for name, svc in services.items():
        bad = sorted(k for k in svc if k not in SERVICE_KEYS and not str(k).startswith("x-"))
        c.ok(not bad, f"{name}: known service keys", "unknown: " + ", ".join(bad))
        if "healthcheck" in svc:
            hc = svc["healthcheck"] or {}
            bad = sorted(k for k in hc if k not in HEALTHCHECK_KEYS)
            test = hc.get("test")
            c.ok(not bad and not hc.get("disable") and (
                isinstance(test, str) and test or
                isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL")),
                f"{name}: health check has a test (CMD / CMD-SHELL) and known keys",
                f"keys {sorted(hc)}, test {test!r}")

    c.section("third-party images pinned to a version tag (not latest)")
    # Third-party images: pinned to a tag other than latest.
    for name, svc in services.items():
        if "build" in svc:
            continue
        image = str(svc.get("image", ""))
        last = image.rsplit("/", 1)[-1]
        tag = last.split("@")[0].partition(":")[2]
        c.ok(image and ("@sha256:" in image or (tag and tag != "latest")),
             f"{name}: image {image!r} has a version tag (not latest)")

    # The backing services.
    c.section("postgres (pg_isready, named data volume) and redis (redis-cli ping)")
    pg, redis = services.get("postgres"), services.get("redis")
    c.ok(pg is not None, "service postgres exists")
    c.ok(redis is not None, "service redis exists")
    named_volumes = set((doc.get("volumes") or {}).keys())
    if pg:
        c.ok(str(pg.get("image", "")).startswith("postgres:"), "postgres: official postgres image")
        c.ok("pg_isready" in healthcheck_text(pg), "postgres: health check runs pg_isready")
        c.ok(any(named and dst == "/var/lib/postgresql/data" for _, dst, named in volume_mounts(pg)),
             "postgres: data directory on a named volume")
    if redis:
        c.ok(str(redis.get("image", "")).startswith("redis:"), "redis: official redis image")
        hc = healthcheck_text(redis)
        c.ok("redis-cli" in hc and "ping" in hc, "redis: health check runs redis-cli ping")

    c.section("every named volume is declared")
    # Every named volume used is declared.
    for name, svc in services.items():
        for src, _, named in volume_mounts(svc):
            if named:
                c.ok(src in named_volumes, f"{name}: volume {src!r} is declared under top-level volumes")

    # The Conveyor services.
    c.section("api (conveyor-api, port 8080, /health check, 0.0.0.0:8080) and scheduler")
    api, sched = services.get("api"), services.get("scheduler")
    c.ok(api is not None and command_list(api)[:1] == ["conveyor-api"], "service api runs conveyor-api")
    c.ok(sched is not None and command_list(sched)[:1] == ["conveyor-scheduler"],
         "service scheduler runs conveyor-scheduler")
    if api:
        ports = [str(p.get("published", "")) + ":" + str(p.get("target", "")) if isinstance(p, dict) else str(p)
                 for p in api.get("ports") or []]
        c.ok(any(p.endswith("8080:8080") for p in ports), "api: port 8080 published", str(ports))
        c.ok(re.search(r"https?://(127\.0\.0\.1|localhost):8080/health\b", healthcheck_text(api)),
             "api: health check requests /health on port 8080")
        c.ok(env_map(api).get("CONVEYOR_API_ADDR") == "0.0.0.0:8080", "api: CONVEYOR_API_ADDR=0.0.0.0:8080")

    c.section(f"one worker per domain queue of {CONFIG}, metrics on 9101, stop grace > drain timeout")
    domain = sorted(q for q in (config.get("queues") or {}) if q not in NON_DOMAIN_QUEUES)
    workers = {}
    for name, svc in services.items():
        cmd = command_list(svc)
        if cmd[:1] == ["conveyor-worker"]:
            workers[name] = cmd
    c.ok(domain, f"{CONFIG} names domain queues: {', '.join(domain)}")
    for q in domain:
        want = ["conveyor-worker", "--queues", q, "--metrics-addr", WORKER_METRICS_ADDR]
        match = [n for n, cmd in workers.items() if cmd == want]
        c.ok(len(match) == 1, f"queue {q}: one worker service runs `{' '.join(want)}`",
             f"found {match or 'none'}")
    drain_s = (config.get("worker") or {}).get("drain_timeout_ms", 30000) / 1000
    for name in workers:
        svc = services[name]
        c.ok("9101/metrics" in healthcheck_text(svc), f"{name}: health check requests /metrics on port 9101")
        grace = seconds(svc.get("stop_grace_period", "10s"))
        c.ok(grace is not None and grace > drain_s,
             f"{name}: stop_grace_period ({svc.get('stop_grace_period', '10s')}) exceeds the "
             f"drain timeout ({drain_s:g} s)")

    c.section("depends_on: condition service_healthy on services with health checks (workers wait for api)")
    conveyor = [n for n in services if n not in ("postgres", "redis")]
    for name in conveyor:
        svc = services[name]
        deps = svc.get("depends_on")
        if not c.ok(isinstance(deps, dict) and deps, f"{name}: depends_on uses the long form with conditions"):
            continue
        for dep, spec in deps.items():
            c.ok((spec or {}).get("condition") == "service_healthy",
                 f"{name}: depends on {dep} with condition service_healthy")
            target = services.get(dep)
            c.ok(target is not None and "healthcheck" in target and not (target["healthcheck"] or {}).get("disable"),
                 f"{name}: dependency {dep} exists and has a health check")
        need = {"postgres", "redis"} | ({"api"} if name in workers else set())
        c.ok(need <= set(deps), f"{name}: waits for {', '.join(sorted(need))}",
             "missing " + ", ".join(sorted(need - set(deps))))

    c.section("DATABASE_URL / REDIS_URL; secrets only in an optional, git-ignored env_file")
    for name in conveyor:
        svc = services[name]
        env = env_map(svc)
        db = env.get("DATABASE_URL", "")
        c.ok(re.match(r"postgres(ql)?://[^@]*@postgres:5432/", db), f"{name}: DATABASE_URL points at service postgres")
        c.ok(env.get("REDIS_URL", "").startswith("redis://redis:6379"), f"{name}: REDIS_URL points at service redis")
        secrets = sorted(k for k in env if SECRET_VARS.match(k))
        c.ok(not secrets, f"{name}: no token or provider key in its environment (they belong in the env file)",
             ", ".join(secrets))
        files = svc.get("env_file") or []
        files = [files] if isinstance(files, (str, dict)) else files
        c.ok(files, f"{name}: reads a secrets env_file")
        for f in files:
            path = f.get("path") if isinstance(f, dict) else f
            optional = isinstance(f, dict) and f.get("required") is False
            c.ok(optional, f"{name}: env_file {path} is optional (required: false)")
            ignored = git_ignored(path)
            c.ok(ignored is not False, f"{name}: env_file {path} is git-ignored (never committed)")
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)],
                                     capture_output=True, check=False).returncode == 0
            c.ok(not tracked, f"{name}: env_file {path} is not in git")

    c.section("storage dirs on named volumes shared by api and the workers")
    # Storage directories: the same named volumes in the API and every worker, at
    # the paths the configuration points the storage keys at.
    for key in ("EPUB_DIR", "AVATAR_DIR"):
        sources = {}
        for name in ["api", *workers]:
            svc = services.get(name) or {}
            path = env_map(svc).get(f"CONVEYOR__STORAGE__{key}", "")
            mounts = [src for src, dst, named in volume_mounts(svc) if named and dst == path]
            c.ok(path and mounts, f"{name}: storage.{key.lower()} ({path or 'unset'}) is on a named volume")
            sources[name] = mounts[0] if mounts else None
        c.ok(len(set(sources.values())) == 1 and None not in sources.values(),
             f"storage.{key.lower()}: one volume shared by api and the workers", str(sources))

    c.section(f"{ENV_EXAMPLE} holds no secret")
    # The example secrets file holds no secret.
    if c.ok(ENV_EXAMPLE.exists(), f"{ENV_EXAMPLE} exists"):
        filled = [line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
                  if re.match(r"^\s*[A-Za-z_][A-Za-z0-9_]*=\S", line)]
        c.ok(not filled, f"{ENV_EXAMPLE}: every variable is left empty", ", ".join(filled))
    return c.finish()


# --------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------

def dockerfile_instructions(text):
    """[(INSTRUCTION, args)] with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        if not buf and re.match(r"^\s*#", line):
            continue
        if re.match(r"^\s*#", line):  # a comment inside a continued instruction
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        if buf.strip():
            word, _, args = buf.strip().partition(" ")
            out.append((word.upper(), " ".join(args.split())))
        buf = ""
    if buf.strip():
        word, _, args = buf.strip().partition(" ")
        out.append((word.upper(), " ".join(args.split())))
    return out


def check_dockerfile():
    c = Checks(str(DOCKERFILE))
    print(f"  {DOCKERFILE}:")
    ins = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
    stages, names = [], set()
    for word, args in ins:
        if word == "FROM":
            m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            image, alias = (m.group(1), m.group(2)) if m else (args, None)
            stages.append({"image": image, "alias": alias, "ins": []})
            if alias:
                names.add(alias.lower())
        elif stages:
            stages[-1]["ins"].append((word, args))
    c.section("multi-stage; base images pinned; no ADD of URLs; cargo-chef dependency layer; four binaries")
    c.ok(len(stages) >= 2, f"multi-stage build ({len(stages)} stages)")
    for st in stages:
        image = st["image"]
        if image.lower() in names:
            continue
        last = image.rsplit("/", 1)[-1]
        tag = last.partition(":")[2]
        c.ok(tag and tag != "latest" or "@sha256:" in image, f"FROM {image}: a version tag, not latest")
    adds = [a for w, a in ins if w == "ADD" and re.search(r"(https?|git)://|git@", a)]
    c.ok(not adds, "no ADD of a URL", "; ".join(adds))
    text = "\n".join(f"{w} {a}" for w, a in ins)
    c.ok(re.search(r"cargo chef cook\b", text) and text.index("cargo chef cook") < text.rindex("cargo build"),
         "dependencies compiled in a layer of their own (cargo chef cook before cargo build)")
    for b in BINARIES:
        c.ok(re.search(rf"target/release/{b}\b", text), f"builder builds and collects {b}")

    c.section("runtime: slim Debian, ca-certificates, non-root USER, config/, CONVEYOR_CONFIG, migrations, storage dirs")
    final = stages[-1] if stages else {"image": "", "ins": []}
    c.ok(re.match(r"debian:[^ ]*slim", final["image"]) is not None, f"runtime stage on a slim Debian ({final['image']})")
    fin = "\n".join(f"{w} {a}" for w, a in final["ins"])
    c.ok("ca-certificates" in fin, "runtime installs ca-certificates")
    users = [a for w, a in final["ins"] if w == "USER"]
    user = users[-1] if users else ""
    c.ok(user and user.split(":")[0] not in ("root", "0"), f"runtime runs as a non-root USER ({user or 'none'})")
    c.ok(re.search(r"^COPY --from=\S+ .*", fin, re.M), "runtime copies the binaries from the builder")
    c.ok(re.search(r"^COPY config/? ", fin, re.M), "runtime has config/")
    m = re.search(r"CONVEYOR_CONFIG=(\S+)", fin)
    c.ok(m and m.group(1).startswith("/"), f"ENV CONVEYOR_CONFIG points at the configuration ({m.group(1) if m else 'unset'})")
    if not re.search(r"^COPY .*migrations", fin, re.M):
        embedded = [str(p) for p in CRATES.glob("*/src/**/*.rs")
                    if "sqlx::migrate!(" in p.read_text(encoding="utf-8")]
        c.ok(embedded, "migrations not copied: embedded by sqlx::migrate! in " + (", ".join(embedded) or "nothing"))
    else:
        c.ok(True, "runtime has migrations/")
    # The storage directories of docker-compose.yml exist in the image (so a new
    # named volume mounted there starts out owned by the unprivileged user).
    if COMPOSE.exists():
        doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
        paths = {v for svc in (doc.get("services") or {}).values()
                 for k, v in env_map(svc).items() if k.startswith("CONVEYOR__STORAGE__") and k.endswith("_DIR")}
        made = " ".join(a for w, a in final["ins"] if w == "RUN" and re.search(r"\b(install -d|mkdir)\b", a))
        for p in sorted(paths):
            c.ok(re.search(rf"(^|\s){re.escape(p)}/?(\s|$)", made),
                 f"runtime creates the storage directory {p} used by {COMPOSE}")

    c.section(f"{DOCKERIGNORE}: excludes target, .git, .conveyor, conveyor.env; keeps the build inputs")
    if c.ok(DOCKERIGNORE.exists(), f"{DOCKERIGNORE} exists"):
        pats = {line.strip().strip("/") for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")}
        for must in ("target", ".git", ".conveyor", "conveyor.env"):
            c.ok(must in pats, f"{DOCKERIGNORE} excludes {must}")
        for keep in ("Cargo.toml", "Cargo.lock", "crates", "migrations", "config", "tests"):
            c.ok(keep not in pats, f"{DOCKERIGNORE} keeps {keep} (the build needs it)")
    return c.finish()


# --------------------------------------------------------------------------------
# Prometheus rule files and the Grafana dashboard: metric names
# --------------------------------------------------------------------------------

def check_metrics(files):
    c = Checks("metric names")
    names, hist, sources = registered_metrics()
    print(f"  metrics registered in {', '.join(sources)}:")
    print("    " + ", ".join(sorted(names)) + (f" (histograms: {', '.join(sorted(hist))})" if hist else ""))
    c.section("names used in " + ", ".join(files))
    c.ok(names, "found the registered metrics")
    valid = series_names(names, hist)
    for f in files:
        check_names(c, f, Path(f).read_text(encoding="utf-8"), valid)
    return c.finish()


# Grafana's built-in interval variables, replaced by typical values so that
# promtool can parse the queries.
GRAFANA_BUILTINS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
GRAFANA_VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def walk(node, path=""):
    """Yields (path, key, value) for every dict entry in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def check_dashboard(out_rules):
    c = Checks(str(DASHBOARD))
    print(f"  {DASHBOARD}:")
    text = DASHBOARD.read_text(encoding="utf-8")
    try:
        dash = json.loads(text)
    except json.JSONDecodeError as e:
        c.ok(False, "parses as JSON", str(e))
        return c.finish()
    c.section("JSON, schemaVersion, title/uid, id null")
    c.ok(True, "parses as JSON")
    c.ok(isinstance(dash.get("schemaVersion"), int) and dash["schemaVersion"] >= 36,
         f"schemaVersion {dash.get('schemaVersion')} (36 or later)")
    c.ok(dash.get("title") and dash.get("uid"), f"has a title and a uid ({dash.get('title')!r}, {dash.get('uid')!r})")
    c.ok(dash.get("id") is None, "no instance-specific id (id: null)")

    c.section("Prometheus data source variable; no install-specific datasource uid")
    variables = (dash.get("templating") or {}).get("list") or []
    ds_vars = {v.get("name") for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"}
    inputs = {i.get("name") for i in dash.get("__inputs") or [] if i.get("pluginId") == "prometheus"}
    allowed = {f"${{{n}}}" for n in ds_vars | inputs} | {f"${n}" for n in ds_vars | inputs} | {"-- Grafana --"}
    c.ok(ds_vars or inputs, "Prometheus data source chosen by a variable: "
         + ", ".join(sorted(ds_vars | inputs) or ["none"]))
    bad = []
    for path, key, value in walk(dash):
        if key == "datasource":
            uid = value.get("uid") if isinstance(value, dict) else value
            if uid is not None and uid not in allowed:
                bad.append(f"{path}: {uid}")
    c.ok(not bad, "every datasource reference uses that variable (no install-specific uid)", "; ".join(bad[:5]))

    c.section("panels: unique ids, positions, queries")
    panels = []

    def collect(ps):
        for p in ps or []:
            panels.append(p)
            collect(p.get("panels"))
    collect(dash.get("panels"))
    ids = [p.get("id") for p in panels]
    c.ok(len(ids) == len(set(ids)) and None not in ids, f"{len(panels)} panels with unique ids")
    exprs = []
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        targets = [t for t in p.get("targets") or [] if t.get("expr")]
        c.ok(p.get("gridPos") and targets, f"panel {title!r}: has a position and a query")
        exprs += [(title, t["refId"], t["expr"]) for t in targets]

    c.section("metric names registered in crates/; every registered metric shown")
    names, hist, _ = registered_metrics()
    valid = series_names(names, hist)
    refs = check_names(c, "dashboard", text, valid)
    unshown = sorted({n + "_bucket" if n in hist else n for n in names} - refs)
    c.ok(not unshown, "every registered metric has a panel", "not shown: " + ", ".join(unshown))

    c.section("queries use only Grafana's interval variables and the dashboard's own")
    rules = []
    defined = {v.get("name") for v in variables if v.get("type") != "datasource"}
    for i, (title, ref, expr) in enumerate(exprs):
        unknown = []

        def value(m):
            name = m.group(1) or m.group(2)
            if name in GRAFANA_BUILTINS:
                return GRAFANA_BUILTINS[name]
            if name not in defined:
                unknown.append(m.group(0))
            return ".*"  # a dashboard variable: used in label matchers
        e = GRAFANA_VAR.sub(value, expr)
        c.ok(not unknown, f"panel {title!r} {ref}: only built-in or dashboard variables", ", ".join(unknown))
        rules.append({"record": f"dashboard:panel_{i}", "expr": e})
    Path(out_rules).write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, sort_keys=False),
        encoding="utf-8")
    c.section(None)
    print(f"    ({len(rules)} queries written to {out_rules} for promtool check rules)")
    return c.finish()


def main(argv):
    try:
        return run(argv)
    except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        print(f"    FAIL  {e}")
        return 1


def run(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "compose":
        return check_compose()
    if cmd == "dockerfile":
        return check_dockerfile()
    if cmd == "metrics" and len(argv) > 2:
        return check_metrics(argv[2:])
    if cmd == "dashboard" and len(argv) == 3:
        return check_dashboard(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
