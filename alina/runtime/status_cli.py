"""``alina status``: the system at a glance (mode, alerts, model calls, usage, scores, paper PnL,
runs), once, as JSON, or refreshed with ``--watch`` until Ctrl-C. The data comes from
:meth:`alina.Alina.status` (:func:`alina.runtime.status.gather_status`); this module only renders it."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import typer
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)
_COLOUR = {"normal": "green", "degraded": "yellow"}


def _unavailable(title: str, section: dict[str, Any]) -> Text:
    return Text.from_markup(f"[bold]{title}[/]: [red]unavailable[/] ({escape(str(section.get('error')))})")


def render(s: dict[str, Any]) -> RenderableType:
    """The dashboard of one :func:`gather_status` result."""
    parts: list[RenderableType] = []
    m = s["mode"]
    if m["available"]:
        colour = _COLOUR.get(m["mode"], "red")
        parts.append(
            Text.from_markup(
                f"[bold]mode[/]: [bold {colour}]{m['mode']}[/] "
                f"(by {escape(m['actor'])}: {escape(m['reason'])}; "
                f"since {m['since'] or '-'}; from {m['source']})"
            )
        )
    else:
        parts.append(_unavailable("mode", m))
    for name, store in s["stores"].items():
        if not store["ok"]:
            parts.append(Text.from_markup(f"[red]{name} down[/]: {escape(str(store['error']))}"))

    mc = s["model_calls"]
    if mc["available"]:
        per = ", ".join(f"{escape(k)} {v}" for k, v in mc["per_server"].items()) or "no governor leases"
        parts.append(
            Text.from_markup(
                f"[bold]model calls in flight[/]: {mc['in_flight']} "
                f"(cap {mc['cap_per_server']} per server; {per})"
            )
        )
    else:
        parts.append(
            Text.from_markup(
                f"[bold]model calls in flight[/]: unavailable ({escape(str(mc['error']))}); "
                f"cap {mc['cap_per_server']} per server"
            )
        )

    a = s["alerts"]
    if a["available"]:
        t = Table(title=f"alerts ({a['open']} open)", title_justify="left")
        for col in ("state", "at", "severity", "kind", "message"):
            t.add_column(col)
        for x in a["items"]:
            state = "[red]open[/]" if x["open"] else "resolved"
            t.add_row(
                state, (x["at"] or "")[:19], x["severity"], escape(x["kind"]), escape(x["message"][:80])
            )
        parts.append(t)
    else:
        parts.append(_unavailable("alerts", a))

    ac = s.get("actions", {"available": False, "error": "not gathered"})
    if ac["available"]:
        t = Table(title=f"alert actions ({ac['waiting']} waiting for an operator)", title_justify="left")
        for col in ("id", "status", "at", "action", "rule", "reason"):
            t.add_column(col)
        for x in ac["items"]:
            colour = "yellow" if x["status"] in ("pending", "approved") else "white"
            t.add_row(
                str(x["id"]),
                f"[{colour}]{x['status']}[/]",
                (x["created_at"] or "")[:19],
                x["action"],
                escape(x["rule"]),
                escape(x["reason"][:60]),
            )
        parts.append(t)
        if ac["waiting"]:
            parts.append(Text("decide: `alina alerts approve ID` / `alina alerts reject ID`", style="dim"))
    else:
        parts.append(_unavailable("alert actions", ac))

    tr = s["transitions"]
    if tr["available"]:
        t = Table(title="mode transitions", title_justify="left")
        for col in ("at", "from", "to", "by", "reason"):
            t.add_column(col)
        for x in tr["items"]:
            how = "auto" if x["automatic"] else "manual"
            t.add_row(
                (x["at"] or "")[:19],
                x["from"],
                x["to"],
                f"{escape(x['actor'])} ({how})",
                escape(x["reason"][:60]),
            )
        parts.append(t)
    else:
        parts.append(_unavailable("mode transitions", tr))

    hours = s["window_s"] / 3600
    u = s["usage"]
    if u["available"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in u["by_outcome"].items()) or "none"
        parts.append(
            Text.from_markup(
                f"[bold]last {hours:g}h[/]: {u['model_calls']} model calls ({outcomes}), "
                f"{u['tokens']} tokens ({u['prompt_tokens']} prompt, {u['completion_tokens']} completion), "
                f"{u['model_seconds']:.1f} model-seconds, estimated cost ${u['estimated_cost_usd']:.4f}"
            )
        )
    else:
        parts.append(_unavailable("usage", u))

    r = s["runs"]
    if r["available"]:
        by = ", ".join(f"{k} {v}" for k, v in r["by_status"].items()) or "none"
        parts.append(Text.from_markup(f"[bold]runs, last {hours:g}h[/]: {r['total']} ({by})"))
    else:
        parts.append(_unavailable("runs", r))

    sc = s["scores"]
    if sc["available"]:
        t = Table(title=f"scores (mean of the last {sc['last_n']})", title_justify="left")
        for col in ("agent", "evaluation", "mean", "pass rate", "n", f"last {hours:g}h"):
            t.add_column(col)
        for x in sc["items"]:
            window = "-" if x["window_mean"] is None else f"{x['window_mean']:.2f}"
            t.add_row(
                escape(x["agent"]),
                escape(x["evaluation"]),
                f"{x['mean']:.2f}",
                f"{x['ok_rate']:.0%}",
                str(x["n"]),
                window,
            )
        parts.append(t)
    else:
        parts.append(_unavailable("scores", sc))

    p = s["paper"]
    if p["available"]:
        t = Table(title=f"paper accounts (holdings at the {p['priced_at']})", title_justify="left")
        for col in ("account", "equity", "total PnL", "realized", "fees", "open orders"):
            t.add_column(col)
        for x in p["accounts"]:
            if "error" in x:
                t.add_row(escape(x["account"]), f"[red]{escape(x['error'])}[/]", "", "", "", "")
                continue
            q = x["quote"]
            t.add_row(
                escape(x["account"]),
                f"{x['equity']:.2f} {q}",
                f"{x['total_pnl']:+.2f}",
                f"{x['realized_pnl']:+.2f}",
                f"{x['fees_paid']:.2f}",
                str(x["open_orders"]),
            )
        parts.append(t if p["accounts"] else Text("paper accounts: none saved yet"))
    else:
        parts.append(_unavailable("paper", p))
    parts.append(Text(f"at {s['generated_at']}", style="dim"))
    return Group(*parts)


def status(
    as_json: bool = typer.Option(False, "--json", help="one JSON object with every section"),
    watch: float | None = typer.Option(
        None, "--watch", min=0.2, help="refresh every SECONDS until Ctrl-C (e.g. --watch 5)"
    ),
    window: float = typer.Option(3600.0, "--window", min=1, help="seconds of usage and runs to sum"),
    last_n: int = typer.Option(20, "--last", min=1, max=10000, help="scores averaged per agent"),
    usd_per_1k: float = typer.Option(
        0.0, "--usd-per-1k-tokens", min=0, help="price for the cost estimate (0: local models)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """The system at a glance: mode, model calls in flight, alerts, transitions, tokens and cost,
    scores per agent, paper PnL, runs. Exit 1 if Postgres is down (the other sections still show)."""
    from alina.cli._common import CommandFailed, _fail, _load, _print_json, _run_async, _with_app, out

    cfg = _load(config)

    def gather() -> dict[str, Any]:
        return _run_async(
            _with_app(
                cfg, lambda app: app.status(window_s=window, last_n=last_n, usd_per_1k_tokens=usd_per_1k)
            )
        )

    if watch is not None:
        _run_async(_watch(cfg, watch, window, last_n, usd_per_1k))
        return
    s = gather()
    if as_json:
        _print_json(s)
    else:
        out.print(render(s))
    pg = s["stores"]["postgres"]
    if not pg["ok"]:
        _fail(CommandFailed(pg["error"]))


async def _watch(cfg: Any, every_s: float, window: float, last_n: int, usd_per_1k: float) -> None:
    """Refresh the dashboard every ``every_s`` until SIGINT (Ctrl-C) or SIGTERM. The signals set
    a flag rather than raising KeyboardInterrupt, so a refresh in progress finishes and the
    command exits 0 without a traceback wherever the signal lands."""
    import asyncio
    import signal

    from rich.live import Live

    from alina.api import Alina
    from alina.cli._common import err, out

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    err.print(f"refreshing every {every_s:g}s; Ctrl-C to stop")
    async with Alina(cfg) as app:
        with Live(console=out, auto_refresh=False) as live:
            while not stop.is_set():
                s = await app.status(window_s=window, last_n=last_n, usd_per_1k_tokens=usd_per_1k)
                live.update(render(s), refresh=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
