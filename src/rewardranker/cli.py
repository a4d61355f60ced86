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


@app.callback()
def main() -> None:
    """rewardranker: sample N programs, execute them, train a reward model on the verdicts, rerank, repeat.

    Every stage reads and writes JSONL records, so each can be run, inspected and resumed on its own.
    """


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


@app.command()
def metrics(
    verdicts: Annotated[Path, typer.Option(help="VERDICTS.jsonl written by `rewardranker execute`.")],
    scores: Annotated[Optional[Path], typer.Option(help="SCORES.jsonl from `rewardranker score`: adds ranked "
                                                        "pass@1, pairwise accuracy and AUROC.")] = None,
    k: Annotated[list[int], typer.Option("--k", help="k values for unbiased pass@k (repeatable).")] = [1, 10, 100],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
) -> None:
    """Print pass@k, ranked pass@1 and oracle pass@n, overall and per language."""
    from rewardranker import metrics as m
    from rewardranker.runio import write_json

    with user_errors():
        outcomes = m.group_outcomes(m.load_verdicts(verdicts), m.load_scores(scores) if scores else None)
        report = m.summarize(outcomes, ks=k)
        Console().print(m.metrics_table(report))
        if json_out:
            write_json(json_out, report)

# ----------------------------------------------------------------------------- reward (issue 3)

# ----------------------------------------------------------------------------- generation & policy (issue 4)

# ----------------------------------------------------------------------------- self-training (issue 5)


if __name__ == "__main__":
    app()
