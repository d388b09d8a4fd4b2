"""The ``alina`` typer application, its built-in sub-apps and the plugin sub-apps mounted on it.

The commands register themselves on these objects in the modules beside this one."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="alina",
    help="AgentAlina: a self-hosted team of AI agents on local models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect and validate config.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")
memory_app = typer.Typer(help="Search and inspect the memory (vectors, graph, stores).", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
runs_app = typer.Typer(help="List and show recorded runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
db_app = typer.Typer(help="The Postgres schema: apply and list migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _mount_plugins_apps() -> None:
    # Imported here, not at the top: these apps pull in ccxt and the backtest engine.
    from alina.runtime.alerts_cli import app as alerts_app
    from alina.runtime.backtest_cli import app as backtest_app
    from alina.runtime.mode_cli import app as mode_app
    from alina.runtime.optimize_cli import app as optimize_app
    from alina.runtime.prompts_cli import app as prompts_app
    from alina.runtime.status_cli import status
    from alina.service.cli import register as register_service
    from alina.skills.cli import app as skills_app

    app.add_typer(mode_app, name="mode")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(optimize_app, name="optimize")
    app.add_typer(skills_app, name="skills")
    app.add_typer(backtest_app, name="backtest")
    app.command("status")(status)
    register_service(app)  # serve, worker, submit, jobs


_mount_plugins_apps()
