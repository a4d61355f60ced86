"""The `rewardranker` command line: one thin command per pipeline stage.

Each command builds its stage's inputs from options, calls the stage, and turns a RewardRankerError into a
one-line message and exit code 1 (no traceback). Heavy imports (torch, transformers) happen inside commands,
so `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from rewardranker.errors import RewardRankerError

app = typer.Typer(
    help="Generate N programs, execute them against tests, and let a self-improving reward model pick one.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from rewardranker import __version__

        typer.echo(f"rewardranker {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """rewardranker: sample N programs, execute them, train a reward model on the verdicts, rerank, repeat.

    Every stage reads and writes JSONL records, so each can be run, inspected and resumed on its own.
    """


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a RewardRankerError as one red line and exit with code 1."""
    try:
        yield
    except RewardRankerError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None


# ----------------------------------------------------------------------------- execution (issue 2)

_RAY_HELP = ("Run on a Ray cluster: 'auto' (the cluster this machine joined with `ray start`), HOST:PORT "
             "(the head's GCS port), or 'local' (a one-machine cluster). Needs pip install 'rewardranker\\[ray]'.")


@app.command()
def execute(
    samples: Annotated[Path, typer.Option(help="Candidates JSONL: lines of {problem_id, sample_id, completion"
                                          "[, prompt]}, or the reranking layout (which carries its problems).")],
    out: Annotated[Path, typer.Option(help="Where to write verdicts JSONL (one line per sample, same order).")],
    problems: Annotated[Optional[str], typer.Option(help="'humaneval', or a HumanEval-layout / MultiPL-E JSONL "
                                                    "file or folder. Optional when --samples defines its problems.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Programs run in parallel (default: number of cores).")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="Run timeout in seconds (default: MultiPL-E's per "
                                                     "language: 15 s, or 5 s for js and cs).")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Verdict cache (SQLite). Default: $REWARDRANKER_CACHE or "
                                                  "~/.cache/rewardranker/verdicts.sqlite.")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help="Run untrusted programs WITHOUT "
                                                    "the bubblewrap sandbox (only rlimits and timeouts).")] = False,
    task: Annotated[Optional[str], typer.Option(help="For a bigcode-evaluation-harness generations.json: its task, "
                                                "e.g. humaneval or multiple-cpp.")] = None,
    verdict_rule: Annotated[str, typer.Option(help="'strict' (default: exit 0 AND harness evidence that the tests "
                                              "ran to their end; what training uses) or 'multipl-e' (exit 0, "
                                              "MultiPL-E's rule, for benchmark fidelity).")] = "strict",
    ray: Annotated[Optional[str], typer.Option(help=_RAY_HELP)] = None,
) -> None:
    """Run each sample's program (prompt + completion + tests) and write one verdict per sample.

    --samples also reads EvalPlus samples (JSONL or folder), bigcode-evaluation-harness generations.json and
    MultiPL-E completions folders (which carry their problems); the detected format is printed.
    """
    with user_errors():
        from rewardranker.execution.cli import execute_command

        execute_command(samples, out, problems, workers, timeout, cache, unsafe_no_sandbox, console, task,
                        verdict_rule=verdict_rule, ray=ray)

# ----------------------------------------------------------------------------- metrics (issue 2)


@app.command()
def metrics(
    verdicts: Annotated[Path, typer.Option(help="VERDICTS.jsonl written by `rewardranker execute`, or a MultiPL-E "
                                                "results folder (*.results.json[.gz]).")],
    scores: Annotated[Optional[Path], typer.Option(help="SCORES.jsonl from `rewardranker score`: adds ranked "
                                                        "pass@1 and the within-problem AUROC.")] = None,
    k: Annotated[list[int], typer.Option("--k", help="k values for unbiased pass@k (repeatable).")] = [1, 10, 100],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
) -> None:
    """Print pass@k, ranked pass@1 and oracle pass@n, overall and per language (problems keyed by language + id)."""
    from rewardranker import metrics as m
    from rewardranker.runio import check_output, write_report

    with user_errors():
        if json_out:
            check_output(json_out, verdicts, scores, option="--json")
        detected: list[str] = []
        outcomes = m.group_outcomes(m.load_verdicts(verdicts, detected), m.load_scores(scores) if scores else None)
        console.print(f"{verdicts}: detected {detected[0]}", highlight=False, soft_wrap=True)
        with warnings.catch_warnings(record=True) as caught:  # one plain line each, not Python's two-line format
            warnings.simplefilter("always")
            report = m.summarize(outcomes, ks=k)
        for message in dict.fromkeys(str(w.message) for w in caught):
            console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        Console().print(m.metrics_table(report))
        if json_out:
            write_report(json_out, report, "metrics", {"verdicts": verdicts, "scores": scores, "k": k})


@app.command("compare-verdicts")
def compare_verdicts_cmd(
    ours: Annotated[Path, typer.Option(help="VERDICTS.jsonl from `rewardranker execute`.")],
    theirs: Annotated[Path, typer.Option(help="Verdicts to compare with: a MultiPL-E results folder "
                                              "(*.results.json[.gz]) or another VERDICTS.jsonl.")],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
    show: Annotated[int, typer.Option(help="Disagreements to list.")] = 20,
) -> None:
    """Compare two sets of verdicts candidate by candidate (passed and status), per language."""
    from rewardranker.compare import compare_verdicts, comparison_table
    from rewardranker.metrics import load_verdicts
    from rewardranker.runio import check_output, write_report

    with user_errors():
        if json_out:
            check_output(json_out, ours, theirs, option="--json")
        found: list[str] = []
        a, b = load_verdicts(ours, found), load_verdicts(theirs, found)
        console.print(f"{ours}: detected {found[0]}; {theirs}: detected {found[1]}", highlight=False, soft_wrap=True)
        report = compare_verdicts(a, b)
        Console().print(comparison_table(report, show))
        if json_out:
            write_report(json_out, report, "compare-verdicts", {"ours": ours, "theirs": theirs})

# ----------------------------------------------------------------------------- reward (issue 3)

_SAMPLES_HELP = ("Candidates: a samples JSONL (problem_id, sample_id, completion) or a reranking-layout file "
                 "(task_id, prompt, completions[, reference_passed, generated_tests]).")
_PROBLEMS_HELP = "Problems the samples belong to (file, folder or 'humaneval'); not needed for reranking-layout files."


@app.command("train-rm")
def train_rm_cmd(
    samples: Annotated[Path, typer.Option(help=_SAMPLES_HELP)],
    out: Annotated[Path, typer.Option(help="Folder to write the trained reward model into (loads with from_pretrained).")],
    verdicts: Annotated[Optional[Path], typer.Option(help="Verdicts JSONL from `rewardranker execute` giving the pass/fail labels; default: the file's reference_passed.")] = None,
    problems: Annotated[Optional[str], typer.Option(help=_PROBLEMS_HELP)] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML/JSON file of RewardConfig settings; options below override it.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="HF hub id or local folder of the backbone (encoder or decoder LM); default: the packaged MiniLM.")] = None,
    max_length: Annotated[Optional[int], typer.Option(help="Tokens per candidate (prompt tail + completion).")] = None,
    max_pairs: Annotated[Optional[int], typer.Option(help="At most this many (passing, failing) pairs per problem.")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the pairs.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimiser steps; overrides --epochs when > 0.")] = None,
    lora: Annotated[Optional[bool], typer.Option("--lora/--no-lora", help="Train LoRA adapters instead of backbone weights.")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bfloat16 autocast; default auto: only where the device has it natively (CUDA bf16, CPU AVX512-BF16/AMX).")] = None,
    int8: Annotated[Optional[bool], typer.Option("--int8/--no-int8", help="CPU: run the frozen backbone dynamically quantised to int8.")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="What runs frozen backbones on CPU: auto (ONNX Runtime when installed), torch or onnx.")] = None,
    train_top_layers: Annotated[Optional[int], typer.Option(help="Backbone blocks trained from the top (-1 all, 0 heads only).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (pair sampling, shuffling, init).")] = None,
    cv: Annotated[int, typer.Option(help="K >= 2: K-fold cross-validation by problem; writes OUT/cv_scores.jsonl (out-of-fold scores) instead of one model.")] = 0,
    extra: Annotated[Optional[Path], typer.Option(help="Extra training data: a folder from `rewardranker build-rm-data` (e.g. MBPP mutants), added to every fold.")] = None,
) -> None:
    """Train a Bradley–Terry reward model on (passing, failing) candidate pairs of the same problem."""
    with user_errors():
        from rewardranker.reward.commands import run_train
        from rewardranker.reward.config import RewardConfig

        base = RewardConfig.from_file(config).to_dict() if config else {}
        given = dict(backbone=backbone, max_length=max_length, max_pairs_per_problem=max_pairs, epochs=epochs,
                     max_steps=max_steps, lora=lora, bf16=bf16, int8=int8, runtime=runtime,
                     train_top_layers=train_top_layers,
                     seed=seed)
        cfg = RewardConfig.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
        path = run_train(cfg, samples, verdicts, problems, out, cv, extra)
        console.print(f"wrote {path}")


@app.command("build-rm-data")
def build_rm_data_cmd(
    problems: Annotated[str, typer.Option(help="Training problems with canonical solutions and tests (HumanEval layout), e.g. an MBPP file. Never the problems you evaluate on.")],
    out: Annotated[Path, typer.Option(help="Folder to write problems.jsonl, samples.jsonl and verdicts.jsonl into (pass it to train-rm --extra).")],
    per_problem: Annotated[int, typer.Option(help="Mutants per problem (plus the reference itself).")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed for choosing mutation sites.")] = 0,
    workers: Annotated[int, typer.Option(help="Parallel executor workers.")] = 2,
) -> None:
    """Build reward-model pairs by executing AST mutants of reference solutions against their tests."""
    with user_errors():
        from rewardranker.execution import ExecutionConfig
        from rewardranker.problems import load_problems
        from rewardranker.reward.mutants import build_rm_data

        stats = build_rm_data(load_problems(problems), out, per_problem, seed, ExecutionConfig(workers=workers,
                                                                                          verdict_rule="strict"))
        console.print(f"wrote {out}: {stats}")


@app.command("score")
def score_cmd(
    samples: Annotated[Path, typer.Option(help=_SAMPLES_HELP + " Labels in the file are ignored.")],
    out: Annotated[Path, typer.Option(help="SCORES JSONL to write: one {problem_id, sample_id, score} per candidate.")],
    mode: Annotated[str, typer.Option(help="rm: reward model; agreement: CodeT dual execution on generated_tests (no model); combined: both.")] = "rm",
    model: Annotated[Optional[Path], typer.Option(help="Reward-model folder from `train-rm` (modes rm and combined).")] = None,
    problems: Annotated[Optional[str], typer.Option(help=_PROBLEMS_HELP)] = None,
    batch_size: Annotated[int, typer.Option(help="Candidates per forward pass.")] = 32,
    rm_weight: Annotated[Optional[float], typer.Option(help="combined: weight of the z-scored reward next to log(1+agreement); default: the model's.")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bfloat16 autocast; default: the model's setting (auto: only where native).")] = None,
    int8: Annotated[Optional[bool], typer.Option("--int8/--no-int8", help="CPU: frozen backbone in dynamic int8; default: the model's setting.")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="What runs frozen backbones on CPU: auto, torch or onnx; default: the model's setting.")] = None,
    ray: Annotated[Optional[str], typer.Option(help=_RAY_HELP + " The model is loaded once per scorer actor.")] = None,
    tests: Annotated[Optional[Path], typer.Option(help="agreement/combined: generated asserts from `rewardranker gen-tests` (one {problem_id, generated_tests} per line); they replace the samples file's own generated_tests.")] = None,
) -> None:
    """Score every candidate with the reward model, execution agreement, or their combination."""
    with user_errors():
        from rewardranker.reward.commands import run_score

        scores = run_score(samples, out, mode, model, problems, batch_size, rm_weight, tests, ray=ray,
                           bf16=bf16, int8=int8, runtime=runtime)
        console.print(f"wrote {len(scores)} scores to {out}")


@app.command("rerank")
def rerank_cmd(
    samples: Annotated[Path, typer.Option(help=_SAMPLES_HELP)],
    scores: Annotated[Path, typer.Option(help="SCORES JSONL from `rewardranker score`.")],
    out: Annotated[Path, typer.Option(help="JSONL to write: the top-scored candidate of each problem (ties: first in file order).")],
    problems: Annotated[Optional[str], typer.Option(help=_PROBLEMS_HELP)] = None,
) -> None:
    """Pick the top-1 candidate of every problem by score."""
    with user_errors():
        from rewardranker.reward.commands import run_rerank

        n = run_rerank(samples, scores, out, problems)
        console.print(f"wrote {n} chosen candidates to {out}")


@app.command("eval")
def eval_cmd(
    samples: Annotated[Path, typer.Option(help=_SAMPLES_HELP)],
    scores: Annotated[list[str], typer.Option(help="MODE=SCORES.jsonl (repeat for several rankers), e.g. rm=rm.jsonl.")],
    out: Annotated[Path, typer.Option(help="Folder for report.json, pass_at_1.png and reliability.png.")],
    verdicts: Annotated[Optional[Path], typer.Option(help="Verdicts JSONL with the true labels; default: the file's reference_passed.")] = None,
    problems: Annotated[Optional[str], typer.Option(help=_PROBLEMS_HELP)] = None,
) -> None:
    """Random / ranked / oracle pass@1 with bootstrap intervals and the within-problem AUROC, per language."""
    with user_errors():
        from rewardranker.reward.commands import run_eval
        from rewardranker.reward.evaluate import report_table

        report = run_eval(samples, verdicts, problems, scores, out,
                          warn=lambda line: console.print(f"[bold yellow]{line}[/]", highlight=False, soft_wrap=True))
        console.print(report_table(report))
        console.print(f"wrote {out}/report.json, pass_at_1.png, reliability.png")


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
                                               "tokenizer: 'procedural:train', 'humaneval', a JSONL file or folder")] = "procedural:train",
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
        from rewardranker.runio import check_output

        check_output(out, problems)
        cfg = GenerationConfig(backend=backend, model=model, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, device=device,
                               precision=precision, base_url=base_url, concurrency=concurrency,
                               retries=retries, timeout_s=timeout_s)
        console.print(f"wrote {sample_problems(cfg, load_problems(problems)[:limit], out)}")


@app.command("gen-tests")
def gen_tests_cmd(
    model: Annotated[str, typer.Option(help=_gen_help("model"))],
    out: Annotated[Path, typer.Option(help="JSONL to write: one {problem_id, generated_tests, ...} per problem "
                                           "(pass it to `score --tests`); the sampled text goes beside it")],
    problems: Annotated[Optional[str], typer.Option(help="Python problems: 'humaneval', 'procedural:...:py', a "
                                                         "JSONL file or folder")] = None,
    samples: Annotated[Optional[Path], typer.Option(help="or a reranking-layout candidates file, whose problems "
                                                         "are used")] = None,
    backend: Annotated[str, typer.Option(help=_gen_help("backend"))] = "hf",
    n: Annotated[int, typer.Option(help="sampled continuations per problem")] = 10,
    max_tests: Annotated[int, typer.Option(help="distinct asserts kept per problem, first ones first")] = 100,
    style: Annotated[str, typer.Option(help="prompt shape: 'codet' (pass body, '# check the correctness of f', "
                                            "'assert ') or 'check' (a 'def check(candidate):' stub)")] = "codet",
    temperature: Annotated[float, typer.Option(help=_gen_help("temperature"))] = 0.8,
    top_p: Annotated[float, typer.Option(help=_gen_help("top_p"))] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(help=_gen_help("max_new_tokens"))] = 128,
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
    """Sample assert statements per problem (CodeT's prompt), extract and dedupe them for `score --tests`."""
    with user_errors():
        from rewardranker.generation import GenerationConfig
        from rewardranker.generation.testgen import GenTestsConfig, generate_tests

        if (problems is None) == (samples is None):
            raise RewardRankerError("give exactly one of --problems and --samples")
        from rewardranker.runio import check_output

        check_output(out, samples)
        if problems is not None:
            from rewardranker.problems import load_problems

            probs = load_problems(problems)
        else:
            from rewardranker.problems import load_candidates

            probs = list(load_candidates(samples).problems.values())
            if not probs:
                raise RewardRankerError(f"{samples}: this layout carries no problems: use --problems")
        cfg = GenerationConfig(backend=backend, model=model, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, device=device,
                               precision=precision, base_url=base_url, concurrency=concurrency,
                               retries=retries, timeout_s=timeout_s, logprobs=False)
        stats = generate_tests(cfg, probs[:limit], out, GenTestsConfig(style=style, max_tests=max_tests))
        console.print(f"wrote {out}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()))


@app.command("sft")
def sft_cmd(
    model: Annotated[str, typer.Option(help="model folder (e.g. from build-generator) or hub id to fine-tune")],
    out: Annotated[Path, typer.Option(help="folder for the fine-tuned model (rerun to resume)")],
    problems: Annotated[str, typer.Option(help="problems: their reference solutions are the training targets, "
                                               "unless --samples/--verdicts are given (default: the suite's train split)")] = "procedural:train",
    samples: Annotated[Optional[Path], typer.Option(help="samples JSONL: train on the ones that passed")] = None,
    verdicts: Annotated[Optional[Path], typer.Option(help="verdicts JSONL for --samples (from `execute`)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file of SFTConfig fields (options below win)")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="passes over the examples [default: 3]")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after this many steps [default: epochs]")] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="peak learning rate [default: 1e-3]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="examples per step [default: 16]")] = None,
    lora: Annotated[Optional[bool], typer.Option(help="train LoRA adapters (merged when saved)")] = None,
    test_examples: Annotated[bool, typer.Option("--test-examples", help="also teach writing tests: CodeT's "
                                                "test prompts (both `gen-tests` styles) -> the problems' own asserts")] = False,
) -> None:
    """Fine-tune a generator on prompt -> solution pairs (loss on the solution only); `accelerate launch` scales it."""
    with user_errors():
        from rewardranker.generation.config import config_from_yaml
        from rewardranker.policy import SFTConfig, examples_from_problems, examples_from_verdicts, run_sft
        from rewardranker.problems import load_problems

        cfg = config_from_yaml(SFTConfig, config, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                               batch_size=batch_size, lora=lora)
        probs = load_problems(problems)
        if (samples is None) != (verdicts is None):
            raise RewardRankerError("--samples and --verdicts go together")
        examples = examples_from_verdicts(probs, samples, verdicts) if samples else examples_from_problems(probs)
        if test_examples:  # both prompt shapes `gen-tests --style` offers
            from rewardranker.generation.testgen import sft_examples

            examples = examples + sft_examples(probs, "codet") + sft_examples(probs, "check")
        console.print(f"wrote {run_sft(cfg, model, examples, out)}")


@app.command("ppo")
def ppo_cmd(
    policy: Annotated[str, typer.Option(help="the SFT model folder: PPO's starting and reference policy")],
    reward_model: Annotated[Path, typer.Option(help="trained reward model folder (from `train-rm`)")],
    out: Annotated[Path, typer.Option(help="run folder: checkpoint, ppo_log.jsonl, tensorboard/, reward_curve.png, "
                                           "policy/ (rerun to resume)")],
    problems: Annotated[str, typer.Option(help="training problems whose prompts are rolled out")] = "procedural:train",
    config: Annotated[Optional[Path], typer.Option(help="YAML file of PPOConfig fields (options below win)")] = None,
    steps: Annotated[Optional[int], typer.Option(help="PPO iterations [default: 100]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="prompts per iteration [default: 16]")] = None,
    kl_coef: Annotated[Optional[float], typer.Option(help="KL penalty to the reference [default: 0.05]")] = None,
    exec_reward_weight: Annotated[Optional[float], typer.Option(
        help="add this times pass/fail from executing each completion against its problem's tests, after "
             "--reward-shaping [default: 0]")] = None,
    lora: Annotated[Optional[bool], typer.Option(help="train LoRA adapters; reference = adapters off")] = None,
    samples_per_prompt: Annotated[Optional[int], typer.Option(help="completions per prompt [default: 1]")] = None,
    reward_shaping: Annotated[Optional[str], typer.Option(
        help="none, or preference: sigmoid(score - the reference solution's score), so a reward-model blind "
             "spot pays at most 1 [default: none]")] = None,
    baseline: Annotated[Optional[str], typer.Option(
        help="none, or group: subtract the mean reward of the prompt's other samples (needs "
             "--samples-per-prompt >= 2) [default: none]")] = None,
) -> None:
    """PPO of the policy against the reward model's score of each decoded completion, with a KL penalty."""
    with user_errors():
        from rewardranker.generation.config import config_from_yaml
        from rewardranker.policy import PPOConfig, run_ppo
        from rewardranker.problems import load_problems

        cfg = config_from_yaml(PPOConfig, config, steps=steps, batch_size=batch_size, kl_coef=kl_coef, lora=lora,
                               exec_reward_weight=exec_reward_weight, reward_model_dir=str(reward_model),
                               samples_per_prompt=samples_per_prompt, reward_shaping=reward_shaping,
                               baseline=baseline)
        console.print(f"wrote {run_ppo(cfg, policy, None, load_problems(problems), out)}")


# ----------------------------------------------------------------------------- self-training (issue 5)


@app.command()
def selftrain(
    config: Annotated[str, typer.Option(help="YAML config file, or the name of a packaged one: 'default' (CPU, "
                                             "minutes), 'paper' (GPUs, the paper's setting), or the ablation presets "
                                             "'self-training', 'hard-negatives', 'no-selftraining'")] = "default",
    run_dir: Annotated[Optional[Path], typer.Option(help="folder for every record, checkpoint and the report; "
                                                         "rerunning a finished run does nothing, an interrupted "
                                                         "one resumes")] = None,
    rerun: Annotated[Optional[str], typer.Option(help="redo this stage and all after it, e.g. iter_1/reward "
                                                      "(see the run's log.txt for stage names)")] = None,
) -> None:
    """Iterative self-training: SFT, reward model, then PPO + hard negatives + RM retraining, with a report."""
    from rewardranker.selftrain import SelfTrainConfig, packaged_config, run_selftrain

    with user_errors():
        path = Path(config) if Path(config).suffix in (".yaml", ".yml", ".json") else packaged_config(config)
        cfg = SelfTrainConfig.from_file(path)
        out = run_selftrain(cfg, run_dir or Path("runs") / f"selftrain-{path.stem}", rerun=rerun,
                            log=lambda line: console.print(line, highlight=False), capture=True)
        typer.echo((out / "report.md").read_text(encoding="utf-8").split("\n## Reward model")[0])
        typer.echo(f"full report: {out / 'report.md'}  plot: {out / 'report.png'}  log: {out.parent / 'log.txt'}")


# ----------------------------------------------------------------------------- serving (issue 10)


@app.command("serve")
def serve_cmd(
    model: Annotated[Path, typer.Option(help="reward model folder (from `train-rm`), loaded once")],
    generator: Annotated[Optional[Path], typer.Option(help="local generator folder (HF causal LM) to sample "
                                                           "from in process")] = None,
    upstream: Annotated[Optional[str], typer.Option(help="or an OpenAI-compatible server to sample from, URL up to "
                                                         "/v1 (vLLM, llama.cpp, TGI); key: $REWARDRANKER_UPSTREAM_API_KEY")] = None,
    upstream_model: Annotated[str, typer.Option(help="the upstream's served model name")] = "",
    upstream_chat: Annotated[bool, typer.Option(help="send chat requests to the upstream's /chat/completions "
                                                     "(else render them into a plain prompt)")] = True,
    host: Annotated[str, typer.Option(help="address to listen on; anything but 127.0.0.1 needs an API key")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="requests processed at once (threads sharing the one loaded "
                                              "model)")] = 4,
    max_queue: Annotated[int, typer.Option(help="requests waiting beyond --workers; more get HTTP 429")] = 64,
    request_timeout: Annotated[float, typer.Option(help="seconds before a request gets HTTP 504")] = 300.0,
    api_key: Annotated[Optional[str], typer.Option(envvar="REWARDRANKER_API_KEY",
                                                   help="clients must send 'Authorization: Bearer KEY'")] = None,
    n_candidates: Annotated[int, typer.Option(help="default N when a request names none")] = 4,
    max_candidates: Annotated[int, typer.Option(help="largest N a request may ask for")] = 64,
    max_tokens: Annotated[int, typer.Option(help="default new tokens per candidate")] = 256,
    exec_workers: Annotated[int, typer.Option(help="sandboxed programs run in parallel per batch")] = 2,
    problems: Annotated[str, typer.Option(help="problems whose ids a request's `tests` may name")] = "humaneval",
    cache: Annotated[Optional[Path], typer.Option(help="verdict cache (SQLite); default as for `execute`")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads (default: torch's)")] = None,
    unsafe_no_sandbox: Annotated[bool, typer.Option("--unsafe-no-sandbox", help="run programs WITHOUT the "
                                                    "bubblewrap sandbox")] = False,
    ray: Annotated[Optional[str], typer.Option(help="execute `tests` and /v1/execute batches on a Ray cluster: "
                                               "'auto' or HOST:PORT (pip install 'rewardranker[ray]')")] = None,
) -> None:
    """Serve best-of-N (OpenAI-compatible /v1/chat/completions and /v1/completions), /v1/score and /v1/execute."""
    with user_errors():
        from rewardranker.serve import ServeConfig
        from rewardranker.serve.run import serve

        serve(ServeConfig(model=model, generator=generator, upstream=upstream, upstream_model=upstream_model,
                          upstream_chat=upstream_chat,
                          host=host, port=port, workers=workers, max_queue=max_queue,
                          request_timeout_s=request_timeout, api_key=api_key, n_candidates=n_candidates,
                          max_candidates=max_candidates, max_tokens=max_tokens, exec_workers=exec_workers,
                          problems=problems, cache_path=cache, torch_threads=threads,
                          sandbox=not unsafe_no_sandbox, ray=ray))


if __name__ == "__main__":
    app()
