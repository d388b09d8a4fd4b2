"""The ``prometheus`` fixture: a real Prometheus for the monitoring tests (Debian's, installed by
scripts/setup.sh); query it with :mod:`tests.monitoring._prometheus`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.monitoring.test_deploy_files import DEPLOY


@pytest.fixture
def prometheus(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[tuple[str, int]]:
    """A Prometheus on a free loopback port that scrapes 127.0.0.1:<target port> every second as
    job ``alina`` (the deployment's job name, so the rules' ``job=~"alina.*"`` matchers apply) and
    evaluates deploy/alerts.yml; yields (its base URL, the target port)."""
    target, port = free_port(), free_port()
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "alina", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", target
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
