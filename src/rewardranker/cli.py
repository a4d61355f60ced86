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
) -> None:
    """Run each sample's program (prompt + completion + tests) and write one verdict per sample."""
    with user_errors():
        from rewardranker.execution.cli import execute_command

        execute_command(samples, out, problems, workers, timeout, cache, unsafe_no_sandbox, console)

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
                     max_steps=max_steps, lora=lora, bf16=bf16, int8=int8, train_top_layers=train_top_layers,
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

        stats = build_rm_data(load_problems(problems), out, per_problem, seed, ExecutionConfig(workers=workers))
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
) -> None:
    """Score every candidate with the reward model, execution agreement, or their combination."""
    with user_errors():
        from rewardranker.reward.commands import run_score

        scores = run_score(samples, out, mode, model, problems, batch_size, rm_weight, bf16, int8)
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
    """Random / ranked / oracle pass@1 with bootstrap intervals, pairwise accuracy and AUROC, per language."""
    with user_errors():
        from rewardranker.reward.commands import run_eval
        from rewardranker.reward.evaluate import report_table

        report = run_eval(samples, verdicts, problems, scores, out)
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

        cfg = GenerationConfig(backend=backend, model=model, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, device=device,
                               precision=precision, base_url=base_url, concurrency=concurrency,
                               retries=retries, timeout_s=timeout_s)
        console.print(f"wrote {sample_problems(cfg, load_problems(problems)[:limit], out)}")


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
        help="add this times pass/fail from executing each completion (ablation) [default: 0]")] = None,
    lora: Annotated[Optional[bool], typer.Option(help="train LoRA adapters; reference = adapters off")] = None,
) -> None:
    """PPO of the policy against the reward model's score of each decoded completion, with a KL penalty."""
    with user_errors():
        from rewardranker.generation.config import config_from_yaml
        from rewardranker.policy import PPOConfig, run_ppo
        from rewardranker.problems import load_problems

        cfg = config_from_yaml(PPOConfig, config, steps=steps, batch_size=batch_size, kl_coef=kl_coef, lora=lora,
                               exec_reward_weight=exec_reward_weight, reward_model_dir=str(reward_model))
        console.print(f"wrote {run_ppo(cfg, policy, None, load_problems(problems), out)}")


# ----------------------------------------------------------------------------- self-training (issue 5)


@app.command()
def selftrain(
    config: Annotated[str, typer.Option(help="YAML config file, or the name of a packaged one: 'default' (CPU, "
                                             "minutes) or 'paper' (GPUs, the paper's setting)")] = "default",
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
                            log=lambda line: console.print(line, highlight=False))
        typer.echo((out / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    app()
