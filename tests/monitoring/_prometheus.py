"""Queries against the test's real Prometheus (see the ``prometheus`` fixture in conftest)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any


def prometheus_get(url: str) -> Any:
    """The JSON body of a GET on the test's Prometheus (loopback only)."""
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def query_result(base: str, expr: str) -> list[Any]:
    """The result of an instant query; empty while Prometheus is not up yet."""
    try:
        body = prometheus_get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    except OSError:
        return []
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])
