"""``alina backtest``: run a built-in strategy or replay recorded signals; report, JSON, PNG.

Exit codes: 0 done, 2 bad input (data or signals file, strategy, parameter, output path);
the message names the file and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alina.progress import step
from alina.trading.backtest import BacktestInputError, BacktestResult, timeframe_label
from alina.trading.market_data import iso_utc
from alina.trading.strategies import STRATEGIES

__all__ = ["app", "backtest", "write_equity_png"]

EXIT_BAD_INPUT = 2

app = typer.Typer(help="Backtest a strategy on historical candles.", add_completion=False)
_out = Console(highlight=False, soft_wrap=True, emoji=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@app.callback(invoke_without_command=True)
def backtest(
    symbol: str = typer.Option(
        "BTC/USDT", "--symbol", help="trading pair (labels the report; picks bundled data)"
    ),
    data: Path | None = typer.Option(None, "--data", help="candles: feather, JSON (.json/.json.gz) or CSV"),
    strategy: str | None = typer.Option(None, "--strategy", help=f"built-in rule: {', '.join(STRATEGIES)}"),
    signals: Path | None = typer.Option(None, "--signals", help="replay recorded signals (JSON or CSV)"),
    param: list[str] = typer.Option([], "--param", "-p", help="strategy parameter NAME=VALUE (repeatable)"),
    fee: float = typer.Option(0.001, "--fee", help="fee rate per trade, e.g. 0.001 = 0.1%"),
    cash: float = typer.Option(10_000.0, "--cash", help="starting cash in the quote currency"),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object"),
    png: Path | None = typer.Option(None, "--png", help="write the equity curve to this PNG file"),
) -> None:
    """Backtest a long-only strategy: trades at the next open, fees in quote currency."""
    try:
        with step("backtesting ...", quiet=as_json) as progress:
            result = _run(symbol, data, strategy, signals, param, fee, cash)
            if png is not None:
                progress.update("drawing the equity curve ...")
                write_equity_png(result, png)
    except BacktestInputError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    else:
        _print_report(result, png)


def _run(
    symbol: str,
    data: Path | None,
    strategy: str | None,
    signals: Path | None,
    param: list[str],
    fee: float,
    cash: float,
) -> BacktestResult:
    from alina.api import backtest as api_backtest  # the Python API's backtest: one code path

    if (strategy is None) == (signals is None):
        raise BacktestInputError("give exactly one of --strategy NAME or --signals FILE")
    if signals is not None and param:
        raise BacktestInputError("--param applies to --strategy, not to --signals")
    return api_backtest(
        symbol, strategy=strategy, signals=signals, params=_parse_params(param), data=data, fee=fee, cash=cash
    )


def _parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BacktestInputError(f"--param must look like NAME=VALUE (got {item!r})")
        out[key.strip()] = value.strip()
    return out


def _print_report(result: BacktestResult, png: Path | None) -> None:
    r, d = result.report, result.data
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    _out.print(
        f"[bold]{escape(result.symbol)}[/] {escape(result.strategy)}({escape(params)}) on {len(d)} "
        f"{timeframe_label(d.timeframe_ms)} candles, {iso_utc(int(d.ts[0]))} .. {iso_utc(int(d.ts[-1]))}"
    )
    table = Table(show_header=False, box=None)
    for label, value in (
        ("starting equity", f"{r.starting_equity:,.2f}"),
        ("final equity", f"{r.final_equity:,.2f}"),
        ("return", f"{r.return_pct:+.2f}% (buy and hold {r.buy_hold_return_pct:+.2f}%)"),
        ("max drawdown", f"{r.max_drawdown_pct:.2f}%"),
        (
            "Sharpe (annualised)",
            "n/a" if r.sharpe is None else f"{r.sharpe:.2f} ({r.periods_per_year:,.0f} bars/yr)",
        ),
        (
            "trades",
            f"{r.trades} fills, {r.round_trips} round trips"
            + ("" if r.win_rate_pct is None else f", {r.win_rate_pct:.1f}% won"),
        ),
        ("fees", f"{r.fees:,.2f} (rate {result.fee_rate:g})"),
        (
            "exposure",
            f"{r.exposure_pct:.1f}% of bars"
            + (", position open at the end" if r.open_position_at_end else ""),
        ),
    ):
        table.add_row(label, value)
    _out.print(table)
    if png is not None:
        _out.print(f"equity curve: {escape(str(png))}")


def write_equity_png(result: BacktestResult, path: str | Path, width: int = 1000, height: int = 520) -> Path:
    """Draw the equity curve (blue), buy and hold (grey) and bars in the market (green band).

    Raises:
        BacktestInputError: the file cannot be written (the message names it).
    """
    from PIL import Image, ImageDraw, ImageFont

    d, r = result.data, result.report
    left, right, top, bottom = 90, 20, 56, 40
    pw, ph = width - left - right, height - top - bottom
    hold = r.starting_equity * d.close / d.open[0]
    lo, hi = float(min(result.equity.min(), hold.min())), float(max(result.equity.max(), hold.max()))
    pad = (hi - lo) * 0.04 or hi * 0.01
    lo, hi = lo - pad, hi + pad
    xs = left + np.arange(len(d)) * (pw / max(1, len(d) - 1))

    def ys(values: np.ndarray) -> np.ndarray:
        return top + (hi - values) / (hi - lo) * ph

    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=12)
    for col in np.unique(np.round(xs[result.qty > 0]).astype(int)):
        draw.line([(int(col), top), (int(col), top + ph)], fill=(226, 243, 228))
    for k in range(5):
        value = lo + (hi - lo) * k / 4
        y = float(ys(np.array([value]))[0])
        draw.line([(left, y), (left + pw, y)], fill=(225, 225, 225))
        draw.text((left - 8, y), f"{value:,.0f}", fill="black", font=small, anchor="rm")
    draw.line(list(zip(xs.tolist(), ys(hold).tolist(), strict=True)), fill=(150, 150, 150), width=1)
    draw.line(list(zip(xs.tolist(), ys(result.equity).tolist(), strict=True)), fill=(31, 90, 200), width=2)
    draw.rectangle([left, top, left + pw, top + ph], outline="black")
    for frac, anchor in ((0.0, "la"), (0.5, "ma"), (1.0, "ra")):
        i = int(round(frac * (len(d) - 1)))
        draw.text(
            (float(xs[i]), top + ph + 8), iso_utc(int(d.ts[i]))[:10], fill="black", font=small, anchor=anchor
        )
    params = ", ".join(f"{k}={v}" for k, v in result.params.items() if k != "file")
    sharpe = "n/a" if r.sharpe is None else f"{r.sharpe:.2f}"
    draw.text(
        (left, 10),
        f"{result.symbol} {result.strategy}({params})  return {r.return_pct:+.2f}%  "
        f"max DD {r.max_drawdown_pct:.2f}%  Sharpe {sharpe}  trades {r.trades}",
        fill="black",
        font=font,
    )
    draw.text((left, 32), "equity", fill=(31, 90, 200), font=small)
    draw.text((left + 60, 32), "buy and hold", fill=(120, 120, 120), font=small)
    draw.text((left + 160, 32), "in the market", fill=(90, 160, 100), font=small)
    target = Path(path)
    try:
        img.save(target, format="PNG")
    except OSError as exc:
        raise BacktestInputError(f"{target}: cannot write the PNG ({exc.strerror or exc})") from None
    return target
