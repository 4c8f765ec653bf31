"""deploy/ and the Dockerfile: the Grafana dashboard and the Prometheus alert rules parse,
cover what the issue asks for, and use only metrics Tenang exports (with Debian's
promtool installed, package prometheus, the rules are also checked and their unit tests
run); the systemd unit passes `systemd-analyze verify`; the Docker image's config listens
on every interface and keeps the database on the volume; and the Dockerfile's own build
and install steps, run here without Docker, give a wheel that installs into a fresh venv
and runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import load_config
from proxy.lifecycle import Status, Verdict
from proxy.observe.metrics import Metrics
from proxy.store.records import UpstreamSummary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKERFILE = REPO / "Dockerfile"
DOCKER_CONFIG = DEPLOY / "docker.toml"
UNIT = DEPLOY / "tenang.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
DASHBOARD = DEPLOY / "grafana-dashboard.json"
ALERTS = DEPLOY / "prometheus-alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus-alerts.test.yml"
METRIC = re.compile(r"\b(tenang_[a-z_]+)")
PROMTOOL = shutil.which("promtool")


def exposition() -> str:
    """Every family with at least one sample, as a scrape shows it."""
    m = Metrics(["antrean"])
    m.accepted("antrean", "antrean.add", 0.01)
    m.attempt("antrean", Verdict.SUCCESS, 0.2)
    m.notification("webhook", "sent")
    m.read("antrean", "antrean.ref", "fallback", 0.001)

    async def summary() -> dict[str, UpstreamSummary]:
        return {"antrean": UpstreamSummary(counts={Status.PENDING: 1}, oldest_pending_at=0.0)}

    m.watch_store(summary)
    m.watch_maintenance(lambda upstream: False)
    return asyncio.run(m.render()).decode()


def exported_series() -> set[str]:
    return {s.name for f in text_string_to_metric_families(exposition()) for s in f.samples}


def test_every_issue_metric_is_exported() -> None:
    series = exported_series()
    for name in ("tenang_requests_accepted_total", "tenang_intake_duration_seconds_bucket",
                 "tenang_deliveries_total", "tenang_delivery_attempt_duration_seconds_bucket",
                 "tenang_queue_depth", "tenang_oldest_pending_age_seconds",
                 "tenang_circuit_state", "tenang_circuit_transitions_total",
                 "tenang_passthrough_reads_total",
                 "tenang_passthrough_duration_seconds_bucket"):
        assert name in series, name


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_dashboard_parses_and_shows_what_ops_need() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] and doc["title"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(dashboard_exprs())
    for needed in ("tenang_queue_depth", "tenang_oldest_pending_age_seconds",
                   "tenang_circuit_state", "tenang_deliveries_total",
                   "histogram_quantile(0.99, sum by (le) (rate(tenang_intake_duration_seconds",
                   "tenang_delivery_attempt_duration_seconds_bucket"):
        assert needed in exprs, needed


def test_dashboard_uses_only_exported_metrics() -> None:
    used = {name for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert used - exported_series() == set()


def alert_blocks() -> dict[str, str]:
    text = ALERTS.read_text(encoding="utf-8")
    blocks = re.split(r"^      - alert: ", text, flags=re.M)[1:]
    return {b.split("\n", 1)[0].strip(): b for b in blocks}


def test_alert_rules_cover_the_issue_and_are_complete() -> None:
    text = ALERTS.read_text(encoding="utf-8")
    assert text.startswith("#") and "\ngroups:\n" in text and "\t" not in text
    blocks = alert_blocks()
    assert {"TenangDown", "TenangCircuitOpen", "TenangOldestPendingTooOld",
            "TenangDeadRequestsIncreasing"} <= set(blocks)
    for name, block in blocks.items():
        for key in ("expr:", "for:", "severity:", "summary:", "description:"):
            assert f"\n        {key}" in block or f"\n          {key}" in block, (name, key)


def test_alert_rules_use_only_exported_metrics() -> None:
    exprs = re.findall(r"^\s+expr: (.+)$", ALERTS.read_text(encoding="utf-8"), flags=re.M)
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used and used - exported_series() == set()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_lints_the_exposition() -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# --- systemd --------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_unit_runs_tenang_as_its_own_user_with_state_and_secrets() -> None:
    unit = unit_settings()
    assert unit["User"] == ["tenang"] and unit["Group"] == ["tenang"]
    assert unit["StateDirectory"] == ["tenang"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == ["2"], "a config error must not loop"
    assert unit["EnvironmentFile"] == ["/etc/tenang/tenang.env"]
    assert unit["ExecStart"] == ["/opt/tenang/bin/tenang serve --config /etc/tenang/tenang.toml"]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert unit[hardening] == ["yes"], hardening
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                    reason="systemd-analyze not installed (package systemd): unit not verified")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # verify insists the ExecStart binaries exist: point them at this checkout's tenang.
    tenang = Path(sys.executable).parent / "tenang"
    assert tenang.exists()
    unit = tmp_path / "tenang.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/tenang/bin/tenang",
                                                              str(tenang)))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "tenang.service" in line]
    assert done.returncode == 0 and complaints == [], done.stdout + done.stderr


# --- Docker ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """(INSTRUCTION, arguments) per stage, comments dropped, continuations joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction == "FROM":
            stages.append([])
        stages[-1].append((instruction, " ".join(args.split())))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def docker_config() -> tuple[str, ...]:
    cfg = load_config(DOCKER_CONFIG, {"TENANG_ADMIN_TOKEN": "t", "TENANG_ANTREAN_SECRET": "s"})
    return (cfg.server.listen.host, str(cfg.server.listen.port), cfg.server.admin_listen.host,
            str(cfg.server.admin_listen.port), str(cfg.store.sqlite_path))


def test_the_container_config_listens_everywhere_and_keeps_the_database_on_the_volume(
        ) -> None:
    host, port, admin_host, admin_port, db = docker_config()
    runtime = dockerfile_stages()[-1]
    [volume] = instructions(runtime, "VOLUME")
    assert (host, admin_host) == ("0.0.0.0", "0.0.0.0")
    assert Path(db).parent == Path(volume) == Path("/var/lib/tenang")
    assert instructions(runtime, "EXPOSE") == [f"{port} {admin_port}"]
    # The image serves the file this test loaded.
    assert "COPY deploy/docker.toml /etc/tenang/config.toml" in [
        f"{i} {a}" for i, a in runtime]
    assert instructions(runtime, "CMD") == ['["serve", "--config", "/etc/tenang/config.toml"]']


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_on_readyz() -> None:
    runtime = dockerfile_stages()[-1]
    [user] = instructions(runtime, "USER")
    assert user not in ("root", "0")
    assert any(f"useradd --system --uid 10001 --user-group --home-dir /var/lib/tenang "
               f"--shell /usr/sbin/nologin {user}" in run for run in instructions(runtime, "RUN"))
    [health] = instructions(runtime, "HEALTHCHECK")
    admin_port = docker_config()[3]
    assert f"http://127.0.0.1:{admin_port}/readyz" in health


BUILD_RUN = "pip install --no-cache-dir 'build>=1.2' && python -m build --wheel --outdir /dist ."
INSTALL_RUN = ("python -m venv /opt/tenang && /opt/tenang/bin/pip install --no-cache-dir "
               "/dist/*.whl && rm -rf /dist")


@pytest.mark.slow
def test_the_dockerfile_steps_build_a_wheel_that_installs_into_a_fresh_venv_and_runs(
        tmp_path: Path) -> None:
    """The build stage's COPY and RUN steps, then the runtime stage's install, run here
    with three substitutions: `build` is this venv's (a dev dependency) and runs without
    isolation (no download of the backend); the fresh venv borrows this venv's installed
    dependencies through a .pth file instead of downloading them (pip --no-deps)."""
    build, runtime = dockerfile_stages()
    assert instructions(build, "RUN") == [BUILD_RUN]
    assert INSTALL_RUN in instructions(runtime, "RUN")
    src = tmp_path / "src"
    src.mkdir()
    for copy in instructions(build, "COPY"):
        *sources, _ = shlex.split(copy)
        for source in sources:
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, src / source,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(REPO / source, src / source)
    dist = tmp_path / "dist"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(dist), str(src)], check=True, capture_output=True, timeout=120,
                   env=clean)
    [wheel] = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("admin_ui/templates/") for n in names), "package data missing"
    assert not [n for n in names if "standin" in n or n.startswith("tests/")]

    venv = tmp_path / "opt" / "tenang"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    [site] = (venv / "lib").glob("python3*/site-packages")
    borrowed = subprocess.run(
        [sys.executable, "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True, text=True, check=True).stdout.strip()
    (site / "borrowed-deps.pth").write_text(borrowed + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--no-cache-dir", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=120, env=clean)

    version = subprocess.run([str(venv / "bin" / "tenang"), "--version"], cwd=tmp_path,
                             env=clean, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert version.stdout == f"tenang {project['version']}\n"
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import proxy, admin_ui; print(proxy.__file__, admin_ui.__file__)"],
                           cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60)
    assert where.stdout.split() == [str(site / "proxy" / "__init__.py"),
                                    str(site / "admin_ui" / "__init__.py")], where.stderr
