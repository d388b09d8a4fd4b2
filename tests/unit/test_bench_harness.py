"""The benchmark harness logic: registry, statistics, result files. No model, no timing checks."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package: import it from the work tree
    sys.path.insert(0, str(ROOT))

from bench import _harness as h  # noqa: E402
from bench.__main__ import main  # noqa: E402


# -- registry --------------------------------------------------------------------------------
def test_registry_lists_benchmark_modules_not_private_ones() -> None:
    names = h.available()
    assert "provider" in names
    assert all(not n.startswith("_") for n in names)
    assert names == sorted(names)


def test_registry_discovers_a_new_module_in_a_directory(tmp_path: Path) -> None:
    (tmp_path / "alpha.py").write_text('"""Alpha."""\ndef run(reps, quick): ...\n')
    (tmp_path / "_private.py").write_text("")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    assert h.available(tmp_path) == ["alpha"]


def test_load_returns_the_module_with_run() -> None:
    module = h.load("provider")  # importing it loads no model
    assert callable(module.run)
    assert h.describe(module)


def test_unknown_name_raises_and_lists_the_benchmarks() -> None:
    with pytest.raises(h.UnknownBenchmark) as info:
        h.load("no-such-bench")
    assert "provider" in info.value.known
    assert "no-such-bench" in str(info.value) and "provider" in str(info.value)


def test_cli_unknown_name_exits_2_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-bench"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'no-such-bench'" in err and "provider" in err


def test_cli_without_a_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "provider" in capsys.readouterr().err


def test_cli_rejects_zero_reps() -> None:
    assert main(["provider", "--reps", "0"]) == 2


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert "provider" in listed and listed == sorted(listed)


# -- statistics ------------------------------------------------------------------------------
def test_median_odd_even_and_ignores_missing_values() -> None:
    assert h.median([3.0, 1.0, 2.0]) == 2.0
    assert h.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert h.median([1.0, None, math.nan, 3.0]) == 2.0  # type: ignore[list-item]
    assert math.isnan(h.median([]))
    assert math.isnan(h.median([None]))  # type: ignore[list-item]


def test_ratio() -> None:
    assert h.ratio(95.0, 100.0) == pytest.approx(0.95)
    assert math.isnan(h.ratio(1.0, 0.0))
    assert math.isnan(h.ratio(math.nan, 1.0))
    assert math.isnan(h.ratio(1.0, math.inf))
    assert math.isnan(h.ratio(None, 1.0))


def test_stopwatch_records_a_non_negative_elapsed() -> None:
    with h.stopwatch() as sw:
        pass
    assert sw.elapsed >= 0.0


# -- goals and result files ------------------------------------------------------------------
def test_goal_met() -> None:
    assert h.Goal("g", 0.96, 0.95).met
    assert not h.Goal("g", 0.94, 0.95).met
    assert h.Goal("g", 0.95, 0.95).met
    assert h.Goal("mem", 100.0, 128.0, higher_is_better=False).met
    assert not h.Goal("mem", 200.0, 128.0, higher_is_better=False).met
    assert not h.Goal("g", math.nan, 0.95).met


def _result() -> h.Result:
    return h.Result(
        name="demo",
        title="Demo vs anchor",
        headers=["figure", "demo", "anchor", "ratio"],
        rows=[["tok/s", 96.0, 100.0, 0.96], ["latency s", 1.25, math.nan, math.nan]],
        goals=[h.Goal("demo_ratio", 0.96, 0.95), h.Goal("other_ratio", math.nan, 0.95)],
        raw={"reps": [{"rep": 0, "demo": 96.0, "anchor": 100.0, "missing": math.nan}]},
        params={"reps": 1, "quick": True},
        notes=["a note"],
        machine={
            "cpu_count": 2,
            "python": "3.11",
            "platform": "Linux",
            "llama_cpp_python": "0.3.36",
            "date": "2026-01-01T00:00:00+00:00",
        },
    )


def test_result_writes_json_with_goals_and_raw_figures(tmp_path: Path) -> None:
    json_path, md_path = _result().write(tmp_path / "results")
    assert json_path == tmp_path / "results" / "demo.json"
    assert md_path == tmp_path / "results" / "demo.md"
    data = json.loads(json_path.read_text())  # strict JSON: NaN became null
    assert data["name"] == "demo"
    assert data["goals"] == [
        {"name": "demo_ratio", "value": 0.96, "target": 0.95, "met": True},
        {"name": "other_ratio", "value": None, "target": 0.95, "met": False},
    ]
    assert data["raw"]["reps"][0] == {"rep": 0, "demo": 96.0, "anchor": 100.0, "missing": None}
    assert data["summary"]["headers"] == ["figure", "demo", "anchor", "ratio"]
    assert data["params"] == {"reps": 1, "quick": True}
    assert set(data["machine"]) >= {"cpu_count", "python", "platform", "llama_cpp_python", "date"}


def test_result_writes_markdown_table(tmp_path: Path) -> None:
    _, md_path = _result().write(tmp_path)
    md = md_path.read_text()
    assert md.startswith("# Demo vs anchor")
    assert "| demo_ratio | 0.960 | ≥ 0.950 | yes |" in md
    assert "| other_ratio | n/a | ≥ 0.950 | **NO** |" in md
    assert "| figure | demo | anchor | ratio |" in md
    assert "| tok/s | 96.0 | 100.0 | 0.960 |" in md
    assert "llama-cpp-python 0.3.36" in md and "2 CPUs" in md
    assert "- a note" in md


def test_machine_info_keys() -> None:
    info = h.machine_info()
    assert set(info) == {"cpu_count", "python", "platform", "llama_cpp_python", "date"}


def test_console_table_aligns_columns() -> None:
    text = h.text_table(["a", "long header"], [["x", 1.5], ["yy", 12.5]])
    lines = text.splitlines()
    assert lines[0].startswith("a   long header")
    assert lines[1] == "--  -----------"
    assert lines[3] == "yy  12.5"
