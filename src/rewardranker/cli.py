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


def _gen_help(name: str) -> str:
    """Help text for a GenerationConfig field, kept in one place (the dataclass metadata)."""
    from dataclasses import fields

    from rewardranker.generation.config import GenerationConfig

    return next(f.metadata["help"] for f in fields(GenerationConfig) if f.name == name)


@app.command("build-generator")
def build_generator_cmd(
    out: Annotated[Path, typer.Option(help="folder to write the model and tokenizer to")],
    problems: Annotated[str, typer.Option(help="problems whose prompts and reference solutions train the "
                                               "tokenizer: 'procedural', 'humaneval', a JSONL file or folder")] = "procedural",
    arch: Annotated[str, typer.Option(help="model class: gpt2 or llama")] = "gpt2",
    size: Annotated[str, typer.Option(help="tiny (2 layers, 128 wide), small (4, 256) or base (6, 384)")] = "tiny",
    seed: Annotated[int, typer.Option(help="seed for the random initial weights")] = 0,
) -> None:
    """Build the embedded small generator: a BPE tokenizer trained locally plus a random model (then run `sft`)."""
    with user_errors():
        from rewardranker.generation import build_local_generator
        from rewardranker.problems import load_problems

        texts = [p.prompt + (p.canonical_solution or "") for p in load_problems(problems)]
        console.print(f"wrote {build_local_generator(texts, out, arch=arch, size=size, seed=seed)}")


@app.command("sample")
def sample_cmd(
    problems: Annotated[str, typer.Option(help="'procedural[:split]', 'humaneval', a JSONL file or folder")],
    model: Annotated[str, typer.Option(help=_gen_help("model"))],
    out: Annotated[Path, typer.Option(help="samples JSONL to write (rerun to resume; raw text goes to "
                                           "<name>.raw.jsonl beside it)")],
    backend: Annotated[str, typer.Option(help=_gen_help("backend"))] = "hf",
    n: Annotated[int, typer.Option(help=_gen_help("n"))] = 1,
    temperature: Annotated[float, typer.Option(help=_gen_help("temperature"))] = 0.8,
    top_p: Annotated[float, typer.Option(help=_gen_help("top_p"))] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(help=_gen_help("max_new_tokens"))] = 256,
    seed: Annotated[int, typer.Option(help=_gen_help("seed"))] = 0,
    batch_size: Annotated[int, typer.Option(help=_gen_help("batch_size"))] = 16,
    device: Annotated[str, typer.Option(help=_gen_help("device"))] = "auto",
    precision: Annotated[str, typer.Option(help=_gen_help("precision"))] = "auto",
    base_url: Annotated[str, typer.Option(help=_gen_help("base_url"))] = "http://127.0.0.1:8000/v1",
    concurrency: Annotated[int, typer.Option(help=_gen_help("concurrency"))] = 8,
    retries: Annotated[int, typer.Option(help=_gen_help("retries"))] = 3,
    timeout_s: Annotated[float, typer.Option(help=_gen_help("timeout_s"))] = 60.0,
    limit: Annotated[Optional[int], typer.Option(help="only the first LIMIT problems")] = None,
) -> None:
    """Draw N completions per problem into a samples JSONL (cut at each problem's stop tokens)."""
    with user_errors():
        from rewardranker.generation import GenerationConfig, sample_problems
        from rewardranker.problems import load_problems

        cfg = GenerationConfig(backend=backend, model=model, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, device=device,
                               precision=precision, base_url=base_url, concurrency=concurrency,
                               retries=retries, timeout_s=timeout_s)
        console.print(f"wrote {sample_problems(cfg, load_problems(problems)[:limit], out)}")


# ----------------------------------------------------------------------------- self-training (issue 5)


if __name__ == "__main__":
    app()
