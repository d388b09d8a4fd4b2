"""``alina backtest``: JSON report, PNG, human output, exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from alina.runtime.backtest_cli import app
from alina.trading.data import DATA_DIR

from .conftest import walk_rows

BTC = str(DATA_DIR / "BTC_USDT-5m.json.gz")


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_json_report_is_one_object_and_deterministic() -> None:
    args = ("--symbol", "BTC/USDT", "--data", BTC, "--strategy", "sma_cross", "--json")
    code, out, _ = invoke(*args)
    assert code == 0
    report = json.loads(out)
    for key in (
        "return_pct",
        "max_drawdown_pct",
        "sharpe",
        "trades",
        "fees",
        "exposure_pct",
        "starting_equity",
        "final_equity",
        "periods_per_year",
    ):
        assert key in report
    assert report["data"]["candles"] == 10999 and report["data"]["timeframe"] == "5m"
    assert report["periods_per_year"] == 105120
    assert report["params"] == {"fast": 20, "slow": 50} and report["starting_equity"] == 10000
    assert invoke(*args)[1] == out


def test_fee_cash_and_params_reach_the_engine() -> None:
    code, out, _ = invoke(
        "--data", BTC, "--strategy", "breakout", "-p", "lookback=30", "--fee", "0", "--cash", "500", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["fees"] == 0 and report["starting_equity"] == 500
    assert report["params"] == {"lookback": 30, "exit_lookback": 10} and report["fee_rate"] == 0


def test_bundled_data_is_the_default_for_a_known_symbol() -> None:
    code, out, _ = invoke("--symbol", "btc", "--strategy", "buy_and_hold", "--json")
    assert code == 0 and json.loads(out)["symbol"] == "BTC/USDT"


def test_png_and_human_report(tmp_path: Path) -> None:
    png = tmp_path / "equity.png"
    code, out, _ = invoke("--data", BTC, "--strategy", "sma_cross", "--png", str(png))
    assert code == 0
    for text in ("final equity", "max drawdown", "Sharpe", "fees", "exposure", str(png)):
        assert text in out
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (1000, 520)
        colours = {c for _, c in img.getcolors(maxcolors=100_000) or []}
    assert (31, 90, 200) in colours  # the equity line was drawn


def test_signals_replay(tmp_path: Path) -> None:
    rows = walk_rows(50)
    data = tmp_path / "c.json"
    data.write_text(json.dumps(rows))
    sig = tmp_path / "s.csv"
    sig.write_text(f"ts,signal\n{rows[5][0]},buy\n{rows[20][0]},sell\n{rows[-1][0] + 10**7},buy\n")
    code, out, _ = invoke("--symbol", "TEST/USD", "--data", str(data), "--signals", str(sig), "--json")
    report = json.loads(out)
    assert code == 0 and report["strategy"] == "signals" and report["trades"] == 2
    assert report["params"]["after_data_ignored"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/c.json", "--strategy", "sma_cross"], "/nonexistent/c.json: cannot read"),
        (["--data", BTC], "exactly one of --strategy"),
        (["--data", BTC, "--strategy", "sma_cross", "--signals", BTC], "exactly one of --strategy"),
        (["--data", BTC, "--strategy", "moon"], "unknown strategy 'moon'"),
        (["--data", BTC, "--strategy", "sma_cross", "-p", "fast"], "NAME=VALUE"),
        (["--data", BTC, "--strategy", "sma_cross", "-p", "fast=60"], "fast < slow"),
        (["--data", BTC, "--strategy", "sma_cross", "--fee", "-1"], "fee must be"),
        (["--symbol", "DOGE/EUR", "--strategy", "sma_cross"], "pass --data FILE"),
        (["--data", BTC, "--signals", BTC], "signal 1"),
        (
            ["--data", BTC, "--strategy", "sma_cross", "--png", "/nonexistent/dir/x.png"],
            "cannot write the PNG",
        ),
    ],
)
def test_bad_input_exits_2_naming_the_problem(args: list[str], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2, out + err
    assert message in err.replace("\n", " ")


def test_bad_data_file_named_in_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.csv"
    bad.write_text("ts,open,high,low,close\n1,1,1,1,oops\n")
    code, _, err = invoke("--data", str(bad), "--strategy", "sma_cross")
    assert code == 2 and str(bad) in err.replace("\n", "") and "line 2" in err


def test_mounts_as_alina_backtest() -> None:
    root = typer.Typer()

    @root.command()
    def other() -> None: ...

    root.add_typer(app, name="backtest")
    r = CliRunner().invoke(root, ["backtest", "--data", BTC, "--strategy", "buy_and_hold", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["trades"] == 1
