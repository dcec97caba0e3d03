"""Entry point of the `spadekit` command: the Typer app, --version, --debug and user-error handling."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from spadekit import __version__
from spadekit.cli import bench, data, demo, imports, perf, plugins, prepare, recipe, segmenter, serve, synth, train
from spadekit.cli.common import err_console
from spadekit.errors import SpadekitError

app = typer.Typer(
    name="spadekit",
    help="Semantic image synthesis with SPADE: datasets to shards, training, benchmarks, synthesis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("plugins")(plugins.plugins_command)
app.command("prepare")(prepare.prepare_command)
app.add_typer(data.app, name="data")
app.add_typer(recipe.app, name="recipe")
app.command("train")(train.train_command)
app.command("bench")(bench.bench_command)
app.command("synth")(synth.synth_command)
app.command("perf")(perf.perf_command)
app.command("serve")(serve.serve_command)
app.command("demo")(demo.demo_command)
app.add_typer(imports.app, name="import")
app.add_typer(segmenter.app, name="segmenter")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spadekit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
) -> None:
    _state["debug"] = debug


def run(argv: list[str] | None = None) -> None:
    """Run the CLI; a user error prints one sentence and exits 1 (the traceback only with --debug)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, standalone_mode=False)
    except SpadekitError as err:
        if _state["debug"] or "--debug" in args:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:  # click usage errors are ClickException subclasses
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":
    run()
