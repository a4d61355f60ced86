"""The `rewardranker` command line: one thin command per pipeline stage.

Each command builds its stage's inputs from options, calls the stage, and turns a RewardRankerError into a
one-line message and exit code 1 (no traceback). Heavy imports (torch, transformers) happen inside commands,
so `--help` stays fast.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console

from rewardranker.errors import RewardRankerError

app = typer.Typer(
    help="Generate N programs, execute them against tests, and let a self-improving reward model pick one.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a RewardRankerError as one red line and exit with code 1."""
    try:
        yield
    except RewardRankerError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None


# ----------------------------------------------------------------------------- execution (issue 2)

# ----------------------------------------------------------------------------- metrics (issue 2)

# ----------------------------------------------------------------------------- reward (issue 3)

# ----------------------------------------------------------------------------- generation & policy (issue 4)

# ----------------------------------------------------------------------------- self-training (issue 5)


if __name__ == "__main__":
    app()
