"""Entry point of the `spadekit` command: the Typer app, --version, --debug and user-error handling."""

from __future__ import annotations

import errno
import importlib
import sys

import typer
from rich.markup import escape

from spadekit import __version__
from spadekit.cli import bench, data, demo, imports, perf, plugins, prepare, recipe, segmenter, serve, synth, train
from spadekit.console import err_console
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


def _click_errors() -> tuple[type[Exception], ...]:
    """The ClickException classes typer may raise: typer >= 0.29 vendors click as `typer._click` with its own
    classes, older typers raise those of the `click` package. Both are caught, so that a usage error is click's
    usage paragraph and exit 2, not a traceback, with any typer of pyproject's range."""
    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


CLICK_ERRORS = _click_errors()

_FIXES = {
    errno.EACCES: "choose a location you may write to",
    errno.EPERM: "choose a location you may write to",
    errno.EROFS: "the file system is read-only; choose another location",
    errno.ENOSPC: "free some disk space or choose another disk",
    errno.EDQUOT: "free some space within your quota or choose another disk",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; name a file instead",
    errno.EEXIST: "a file of that name is in the way; move it or choose another path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_sentence(err: OSError) -> str:
    """One sentence for an OSError that reached the top: the path(s) it names, the system's reason and a fix."""
    reason = err.strerror or str(err) or type(err).__name__
    fix = _FIXES.get(err.errno, "check the path and the disk")
    if err.filename is None:
        return f"{reason}; {fix}."
    where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 is not None else "")
    return f"{where}: {reason}; {fix}."


def run(argv: list[str] | None = None) -> None:
    """Run the CLI. A user error prints one sentence and exits 1; a usage error prints click's usage paragraph
    and exits 2. The traceback only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    try:
        _exit_on_code(app(args=args, prog_name="spadekit", standalone_mode=False))
    except (SpadekitError, OSError) as err:  # OSError: a path the user named is read-only, full, not a folder...
        if _state["debug"] or "--debug" in args:
            raise
        sentence = str(err) if isinstance(err, SpadekitError) else os_error_sentence(err)
        err_console.print(f"[bold red]error:[/] {escape(sentence)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except CLICK_ERRORS as err:
        err.show()
        sys.exit(err.exit_code)


def _exit_on_code(returned: object) -> None:
    """Outside standalone mode typer returns (not raises) the code of an Exit, and turns Ctrl+C into Exit(130):
    without this a Ctrl+C would end with status 0, and `spadekit prepare ... && spadekit train ...` go on."""
    if isinstance(returned, int) and not isinstance(returned, bool) and returned != 0:
        if returned == 130:
            err_console.print("[red]interrupted[/]")
        sys.exit(returned)


if __name__ == "__main__":
    run()
