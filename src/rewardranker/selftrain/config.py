"""SelfTrainConfig: one YAML file naming problems, models and budgets of the iterative self-training loop.

Every field is checked before any work starts; a wrong one raises ConfigError naming the field and the file.
Stage settings (`generation`, `sft`, `ppo`, `reward`, `execution`) are passed through to the stage's own Config
dataclass, which is built here once, so its validation errors also surface up front (as `reward.lr` etc.).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rewardranker.errors import ConfigError
from rewardranker.records import LANGUAGES
from rewardranker.runio import content_hash

STAGE_SECTIONS = ("generation", "sft", "ppo", "reward", "execution")
PROTOCOL_CHOICES = {"rm_update": ("self_training", "hard_negatives", "none"), "rm_init": ("seed", "continue"),
                    "rm_data_window": ("all", "last")}
_PLACEHOLDER_MODEL = "(set by the loop)"  # GenerationConfig needs a model; the loop sets it per iteration


@dataclass
class SelfTrainConfig:
    """The whole loop: iteration 0 = SFT, sample, execute, train RM; iteration k >= 1 = PPO from the SFT model
    against the current RM, sample, execute, mine hard negatives, retrain the RM."""

    # problems
    train_problems: list[str] = field(default_factory=lambda: ["procedural:train"], metadata={
        "help": "problem sets the loop trains on (load_problems specs: procedural:train, a JSONL file, ...)"})
    eval_problems: list[str] = field(default_factory=lambda: ["procedural:heldout"], metadata={
        "help": "held-out problem sets, only ever evaluated on; must share no problem with train_problems"})
    languages: list[str] = field(default_factory=lambda: ["py"], metadata={
        "help": "keep only problems in these languages"})
    max_train_problems: int = field(default=0, metadata={"help": "use a fixed random subset of this many "
                                                                 "training problems (0 = all)"})
    max_eval_problems: int = field(default=0, metadata={"help": "same for the held-out problems (0 = all)"})
    problems_per_iteration: int = field(default=0, metadata={
        "help": "sample and run PPO on a fresh random subset of this many training problems each iteration "
                "(0 = all); SFT always uses every training problem"})
    # models
    generator: str = field(default="local", metadata={
        "help": "'local' (build a small GPT-2/Llama on the training problems' text) or a model folder / hub id"})
    generator_arch: str = field(default="gpt2", metadata={"help": "local generator class: gpt2 or llama"})
    generator_size: str = field(default="tiny", metadata={"help": "local generator size: tiny, small or base"})
    reward_backbone: str = field(default="sft", metadata={
        "help": "'sft' (start the RM from this run's SFT model, as the paper does), 'minilm', or a folder / hub id"})
    # budgets
    iterations: int = field(default=2, metadata={"help": "PPO + RM-retraining rounds after iteration 0"})
    samples_per_problem: int = field(default=8, metadata={"help": "samples per training problem each iteration"})
    eval_samples_per_problem: int = field(default=8, metadata={"help": "samples per held-out problem (the n "
                                                                       "of oracle pass@n)"})
    hard_negative_weight: float = field(default=2.0, metadata={"help": "weight of a hard negative's pairs in "
                                                                       "the RM loss (others weigh 1)"})
    hard_negative_quantile: float = field(default=0.5, metadata={
        "help": "a failing sample also counts as hard when its score is above this quantile of the passing "
                "samples' scores (catches problems where nothing passed)"})
    # iteration protocol: what RM_k (k >= 1) is trained on and from where
    rm_update: str = field(default="self_training", metadata={
        "help": "what iteration k adds to the RM data: 'self_training' (every executed PPO_k sample with its "
                "verdict: new positives, all negatives, hard ones weighted), 'hard_negatives' (only the failing "
                "samples RM_{k-1} ranks too high), or 'none' (no self-training: RM_0 is kept throughout)"})
    rm_init: str = field(default="seed", metadata={
        "help": "'seed': RM_k is trained afresh from reward_backbone each iteration; 'continue': RM_k starts from "
                "RM_{k-1}'s network (its feature head restarts at zero)"})
    rm_data_window: str = field(default="all", metadata={
        "help": "'all': RM_k trains on the data of iterations 0..k accumulated; 'last': on iteration k's new "
                "data plus the reference solutions only"})
    dedup_programs: bool = field(default=True, metadata={
        "help": "keep one RM-data record per identical program (same problem, same code up to trailing "
                "whitespace), with the largest weight, so repeated samples do not dominate the pairs"})
    reference_positives: bool = field(default=True, metadata={
        "help": "add each training problem's reference solution to the RM data as a passing candidate"})
    seed: int = field(default=0, metadata={"help": "seed of every stage; the same seed gives the same run"})
    sft_seed: int = field(default=-1, metadata={
        "help": "seed of the generator build and SFT (-1: `seed`); fixing it lets runs of several seeds share one "
                "SFT model, so that seeds vary everything after SFT (the ablation benchmark does this)"})
    sft_cache: str = field(default="~/.cache/rewardranker/sft", metadata={
        "help": "folder where finished SFT stages are kept under a hash of their inputs and reused by later runs "
                "with the same training text, generator, SFT settings and seed ('' = never cache)"})
    # stage settings, passed to each stage's Config dataclass
    generation: dict[str, Any] = field(default_factory=dict, metadata={"help": "GenerationConfig fields"})
    sft: dict[str, Any] = field(default_factory=dict, metadata={"help": "SFTConfig fields"})
    ppo: dict[str, Any] = field(default_factory=dict, metadata={"help": "PPOConfig fields"})
    reward: dict[str, Any] = field(default_factory=dict, metadata={"help": "RewardConfig fields"})
    execution: dict[str, Any] = field(default_factory=dict, metadata={"help": "ExecutionConfig fields"})
    ray: str = field(default="", metadata={
        "help": "Ray cluster for execute and score ('auto', HOST:PORT, ray://HOST:PORT, 'local'; '' = this machine)"})
    source: str = field(default="", metadata={"help": "the file this was read from (for messages)"})

    def __post_init__(self) -> None:
        for name in ("train_problems", "eval_problems", "languages"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, [value])
        self._check_types()
        self._check_values()
        self.stage_configs()  # builds every stage Config: their errors surface now, before any work

    # ------------------------------------------------------------------ validation

    def _fail(self, name: str, message: str) -> None:
        raise ConfigError(name, message, self.source or None)

    def _check_types(self) -> None:
        for f in fields(self):
            value, want = getattr(self, f.name), _TYPES[f.name]
            ok = isinstance(value, want) and not (isinstance(value, bool) and want in (int, float, (int, float)))
            if not ok:
                self._fail(f.name, f"= {value!r} has type {type(value).__name__}, expected {_type_name(want)}")
            if want is list and not all(isinstance(v, str) and v for v in value):
                self._fail(f.name, f"= {value!r} must be a list of non-empty strings")

    def _check_values(self) -> None:
        if not self.train_problems:
            self._fail("train_problems", "is empty: name at least one problem set")
        if not self.eval_problems:
            self._fail("eval_problems", "is empty: name at least one held-out problem set")
        if sorted(self.train_problems) == sorted(self.eval_problems):
            self._fail("eval_problems", "is the same as train_problems: held-out problems must never be trained on")
        for lang in self.languages:
            if lang not in LANGUAGES:
                self._fail("languages", f"{lang!r} is not one of {', '.join(LANGUAGES)}")
        if not self.languages:
            self._fail("languages", "is empty")
        for name in ("max_train_problems", "max_eval_problems", "problems_per_iteration", "iterations"):
            if getattr(self, name) < 0:
                self._fail(name, f"= {getattr(self, name)} must be >= 0")
        for name in ("samples_per_problem", "eval_samples_per_problem"):
            if getattr(self, name) < 2:
                self._fail(name, f"= {getattr(self, name)} must be >= 2 (reranking needs candidates to choose from)")
        for name, allowed in PROTOCOL_CHOICES.items():
            if getattr(self, name) not in allowed:
                self._fail(name, f"= {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.hard_negative_weight <= 0:
            self._fail("hard_negative_weight", f"= {self.hard_negative_weight} must be > 0")
        if not 0 <= self.hard_negative_quantile <= 1:
            self._fail("hard_negative_quantile", f"= {self.hard_negative_quantile} must be in [0, 1]")
        if self.generator == "local":
            from rewardranker.generation.local_model import ARCHS, SIZES

            if self.generator_arch not in ARCHS:
                self._fail("generator_arch", f"= {self.generator_arch!r} is not one of {', '.join(ARCHS)}")
            if self.generator_size not in SIZES:
                self._fail("generator_size", f"= {self.generator_size!r} is not one of {', '.join(SIZES)}")

    def stage_configs(self) -> dict[str, Any]:
        """Each stage's Config dataclass built from its section; errors are re-raised as `section.field`."""
        from rewardranker.selftrain import stages

        out = {}
        for section in STAGE_SECTIONS:
            cls = stages.config_class(section)
            overrides = dict(getattr(self, section))
            if section == "execution" and self.ray:
                overrides.setdefault("ray", self.ray)
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                self._fail(f"{section}.{unknown[0]}", f"is not a {cls.__name__} field (known: {', '.join(sorted(known))})")
            if section == "execution" and overrides.setdefault("verdict_rule", "strict") != "strict":
                self._fail("execution.verdict_rule", f"= {overrides['verdict_rule']!r}: self-training labels, hard "
                           "negatives and pass rates use the strict rule (multipl-e lets early exits pass)")
            if section == "generation":
                overrides.setdefault("model", _PLACEHOLDER_MODEL)
                overrides.setdefault("seed", self.seed)
            elif section == "sft":
                overrides.setdefault("seed", self.seed if self.sft_seed < 0 else self.sft_seed)
            elif "seed" in known:
                overrides.setdefault("seed", self.seed)
            try:
                out[section] = cls(**overrides)
            except ConfigError as e:
                self._fail(f"{section}.{e.field}", str(e).split(": ", 1)[-1])
            except (TypeError, ValueError) as e:
                self._fail(section, f"{cls.__name__} rejected these settings: {e}")
        return out

    # ------------------------------------------------------------------ I/O

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        return d

    def hash(self) -> str:
        """Short hash of the resolved settings; a run directory belongs to exactly one."""
        return content_hash(json.dumps(self.to_dict(), sort_keys=True))[:16]

    @classmethod
    def from_dict(cls, obj: dict[str, Any], source: str | Path | None = None) -> SelfTrainConfig:
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ConfigError(unknown[0], f"is not a self-training setting (known: {', '.join(sorted(known))})",
                              source)
        return cls(**obj, source=str(source or ""))

    @classmethod
    def from_file(cls, path: str | Path) -> SelfTrainConfig:
        """Read a YAML (or JSON) config file."""
        import yaml

        path = Path(path)
        try:
            obj = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ConfigError("(file)", f"cannot read the config: {e.strerror}", path) from None
        except yaml.YAMLError as e:
            raise ConfigError("(file)", f"is not valid YAML: {e}", path) from None
        if not isinstance(obj, dict):
            raise ConfigError("(file)", "must hold a mapping of setting: value", path)
        return cls.from_dict(resolve_extends(obj, path), path)


def resolve_extends(obj: dict[str, Any], path: Path, depth: int = 0) -> dict[str, Any]:
    """`extends: NAME` (a packaged config or a YAML path next to this one): its settings, overridden by `obj`'s;
    stage sections (`ppo: {...}`) are merged field by field."""
    import yaml

    base_name = obj.pop("extends", None)
    if base_name is None:
        return obj
    if not isinstance(base_name, str) or depth > 4:
        raise ConfigError("extends", f"= {base_name!r} must name one config (default, paper or a YAML file)", path)
    local = path.parent / base_name
    base_path = local if local.suffix in (".yaml", ".yml") and local.exists() else packaged_config(base_name)
    base = yaml.safe_load(base_path.read_text(encoding="utf-8")) or {}
    base = resolve_extends(base, base_path, depth + 1)
    for key, value in obj.items():
        if key in STAGE_SECTIONS and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


_TYPES: dict[str, Any] = {
    "train_problems": list, "eval_problems": list, "languages": list, "max_train_problems": int,
    "max_eval_problems": int, "problems_per_iteration": int, "generator": str, "generator_arch": str, "generator_size": str,
    "reward_backbone": str, "iterations": int, "samples_per_problem": int, "eval_samples_per_problem": int,
    "hard_negative_weight": (int, float), "hard_negative_quantile": (int, float), "reference_positives": bool, "seed": int,
    "sft_seed": int, "sft_cache": str, "rm_update": str, "rm_init": str, "rm_data_window": str, "dedup_programs": bool,
    "generation": dict, "sft": dict, "ppo": dict, "reward": dict, "execution": dict, "source": str,
}

_TYPES["ray"] = str  # issue 11


def _type_name(want: Any) -> str:
    return "number" if want == (int, float) else {list: "list", dict: "mapping"}.get(want, want.__name__)


def packaged_config(name: str) -> Path:
    """Path of a config shipped in the package (`default`, `paper`, the presets: `no-selftraining`, ...)."""
    import importlib.resources

    path = Path(str(importlib.resources.files("rewardranker"))) / "configs" / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError("config", f"no packaged config named {name!r} (packaged: {', '.join(known)})")
    return path


def yaml_value(text: str) -> Any:
    """A command-line value read as YAML, with numbers like `5e-5` (a string to YAML 1.1) read as floats."""
    import yaml

    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` items (YAML values) as config settings; `section.field=value` sets one stage field."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        value = yaml_value(raw)
        if "." in key:
            section, field_name = key.split(".", 1)
            out.setdefault(section, {})[field_name] = value
        else:
            out[key] = value
    return out


def apply_overrides(obj: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of config dict `obj` with `overrides` (from `parse_overrides`) set; a stage section is updated, not replaced."""
    out = dict(obj)
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out
