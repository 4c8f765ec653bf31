"""deploy/three-instances/: three Tenang instances on one PostgreSQL database behind nginx.
The example cannot rot: Tenang's own config loader and `tenang check-config` accept each
instance's file; the files differ
only in the instance's two addresses; nginx's upstreams are exactly those addresses and
keep BPJS's user_key header; the pools fit PostgreSQL's default max_connections; the
systemd template passes `systemd-analyze verify` where systemd is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import Config, load_config
from tests.pg_support import schema_now

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "three-instances"
CONFIGS = sorted(EXAMPLE.glob("tenang-*.toml"))
NGINX = EXAMPLE / "nginx.conf"
TEMPLATE = EXAMPLE / "tenang@.service"
SECRETS = {"TENANG_ADMIN_TOKEN": "t", "TENANG_STORE_PASSWORD": "p",
           "TENANG_RESULTS_TOKEN": "r", "TENANG_ANTREAN_SECRET": "s",
           "TENANG_VCLAIM_SECRET": "s"}
DB_EXAMPLE = "postgresql://tenang@db.example:5432/tenang"
PG_DEFAULT_MAX_CONNECTIONS = 100
PG_RESERVED = 3 + 10  # superuser_reserved_connections, and room for backups and psql
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def configs() -> list[Config]:
    return [load_config(path, SECRETS) for path in CONFIGS]


def upstream_servers(name: str) -> list[str]:
    block = re.search(r"upstream " + name + r" \{(.*?)\}", NGINX.read_text(), re.DOTALL)
    assert block, f"no upstream {name} in {NGINX}"
    return re.findall(r"^\s*server ([\d.]+:\d+);", block[1], re.MULTILINE)


def test_three_instances_load_with_one_store_and_their_own_addresses() -> None:
    loaded = configs()
    assert [p.name for p in CONFIGS] == ["tenang-a.toml", "tenang-b.toml", "tenang-c.toml"]
    assert len({c.store.url for c in loaded}) == 1 and loaded[0].store.is_postgres
    addresses = [str(a) for c in loaded for a in (c.server.listen, c.server.admin_listen)]
    assert len(set(addresses)) == len(addresses)


def test_the_files_differ_only_in_the_instances_addresses() -> None:
    def without_addresses(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines()
                if not re.match(r"(# Instance \w|listen|admin_listen) ", line)]

    first, *others = (without_addresses(p) for p in CONFIGS)
    assert all(other == first for other in others)


def test_nginx_sends_to_exactly_the_instances_and_keeps_user_key() -> None:
    loaded = configs()
    assert upstream_servers("tenang_simrs") == [str(c.server.listen) for c in loaded]
    assert upstream_servers("tenang_admin") == [str(c.server.admin_listen) for c in loaded]
    text = NGINX.read_text()
    assert text.count("underscores_in_headers on;") == 1
    # A POST already sent is never resent to another instance (nginx's default).
    assert re.search(r"proxy_next_upstream[^;]*non_idempotent", text) is None


def test_the_pools_fit_postgresqls_default_max_connections() -> None:
    total = sum(c.store.pool_max for c in configs())
    assert total <= PG_DEFAULT_MAX_CONNECTIONS - PG_RESERVED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_check_config_accepts_each_instance(path: Path, tmp_path: Path) -> None:
    """Each file as it is but for the database, the test server's (check-config
    connects to it and reads its schema)."""
    text = path.read_text()
    assert text.count(DB_EXAMPLE) == 1
    config = tmp_path / path.name
    config.write_text(text.replace(DB_EXAMPLE, schema_now()))
    done = subprocess.run([sys.executable, "-m", "proxy", "check-config", "--config",
                           str(config)], cwd=REPO, env=SECRETS | {"PATH": ""},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                    reason="systemd-analyze not installed (package systemd): unit not verified")
def test_systemd_analyze_verifies_the_template(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    assert "--config /etc/tenang/tenang-%i.toml" in TEMPLATE.read_text()
    tenang = Path(sys.executable).parent / "tenang"
    unit = tmp_path / "tenang@a.service"
    unit.write_text(TEMPLATE.read_text().replace("/opt/tenang/bin/tenang", str(tenang)))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if "tenang@" in line]
    assert done.returncode == 0 and complaints == [], done.stdout + done.stderr
