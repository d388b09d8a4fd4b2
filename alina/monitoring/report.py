"""The live figures of this process in one short line, for the monitor agent's tool.

Read from :data:`alina.monitoring.metrics.REGISTRY` only (no I/O, microseconds): model calls and
failures, tokens and estimated cost since the process started, calls in flight against the cap,
paper equity / PnL / drawdown, and the alert rules firing now.
"""

from __future__ import annotations

from typing import Any

from alina.monitoring import metrics

__all__ = ["live_figures", "live_figures_line"]

_FAILED = {"timeout", "unreachable", "malformed", "overflow", "error", "exhausted"}


def live_figures() -> dict[str, Any]:
    """``{model_calls, failed_calls, prompt_tokens, completion_tokens, cost, in_flight, cap,
    paper: {account: {equity, total_pnl, drawdown}}, firing: [rule]}`` since the process started."""
    out: dict[str, Any] = {
        "model_calls": 0.0,
        "failed_calls": 0.0,
        "prompt_tokens": 0.0,
        "completion_tokens": 0.0,
        "cost": 0.0,
        "in_flight": 0.0,
        "cap": None,
        "paper": {},
        "firing": [],
    }
    for fam in metrics.REGISTRY.collect():
        for s in fam.samples:
            n, lab = s.name, s.labels
            if n == "alina_model_calls_total" and lab.get("outcome") != "exhausted":
                out["model_calls"] += s.value
                out["failed_calls"] += s.value if lab.get("outcome") in _FAILED else 0.0
            elif n == "alina_tokens_total":
                out[f"{lab.get('kind')}_tokens"] = out.get(f"{lab.get('kind')}_tokens", 0.0) + s.value
            elif n == "alina_cost_estimated_total":
                out["cost"] += s.value
            elif n == "alina_model_calls_in_flight":
                out["in_flight"] += s.value
            elif n == "alina_governor_limit":
                out["cap"] = s.value if out["cap"] is None else min(out["cap"], s.value)
            elif n == "alina_paper_equity":
                out["paper"].setdefault(lab["account"], {})["equity"] = s.value
            elif n == "alina_paper_pnl" and lab.get("kind") == "total":
                out["paper"].setdefault(lab["account"], {})["total_pnl"] = s.value
            elif n == "alina_paper_drawdown_ratio":
                out["paper"].setdefault(lab["account"], {})["drawdown"] = s.value
            elif n == "alina_alerts_firing" and s.value == 1.0:
                out["firing"].append(lab["rule"])
    return out


def live_figures_line() -> str:
    """``figures: ...`` - one line of :func:`live_figures` for a small model to quote."""
    f = live_figures()
    cap = f"/{f['cap']:.0f}" if f["cap"] is not None else ""
    parts = [
        f"model calls {f['model_calls']:.0f} ({f['failed_calls']:.0f} failed)",
        f"tokens {f['prompt_tokens'] + f['completion_tokens']:.0f} "
        f"({f['prompt_tokens']:.0f} prompt, {f['completion_tokens']:.0f} completion)",
        f"estimated cost {f['cost']:.4f}",
        f"in flight {f['in_flight']:.0f}{cap}",
    ]
    for account, p in sorted(f["paper"].items()):
        parts.append(
            f"{account} equity {p.get('equity', 0.0):.2f} PnL {p.get('total_pnl', 0.0):+.2f} "
            f"drawdown {100 * p.get('drawdown', 0.0):.1f}%"
        )
    parts.append("alerts firing: " + (", ".join(sorted(f["firing"])) or "none"))
    return "figures since start: " + "; ".join(parts)
