"""Request bodies of the service as pydantic models: validation names the offending field for the 4xx error.

OpenAI's own fields keep OpenAI's names and meanings; ours (`n_candidates`, `rerank`, `tests`, `generated_tests`,
`language`) ride along as extra body fields (`extra_body=` in the `openai` client). Unknown fields are ignored,
as OpenAI-compatible servers do, so clients that send e.g. `frequency_penalty` keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rewardranker.records import LANGUAGES

MAX_TEXT = 200_000  # characters in one prompt, message, candidate or program
MAX_TESTS = 100  # asserts in one `tests` / `generated_tests` list
RERANK_MODES = ("rm", "agreement", "combined")

Language = Literal[LANGUAGES]  # type: ignore[valid-type]


def _text(max_length: int = MAX_TEXT, **kw: Any) -> Any:
    return Field(max_length=max_length, **kw)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=MAX_TEXT)


class StreamOptions(_Body):
    include_usage: bool = False


class BestOfN(_Body):
    """Sampling and reranking fields shared by chat and text completions."""

    model: str = _text(256)
    n: int = Field(1, ge=1, le=64, description="choices returned: the n best-ranked candidates")
    n_candidates: int | None = Field(None, ge=1, description="candidates sampled (default: the server's)")
    rerank: Literal["rm", "agreement", "combined"] = "rm"
    tests: list[str] | str | None = Field(None, description="asserts / test code to execute the candidates "
                                                            "against, or a problem id the server knows")
    generated_tests: list[str] | None = Field(None, max_length=MAX_TESTS,
                                              description="model-written asserts for rerank agreement|combined")
    language: Language = "py"
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = _text(256, default=None)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str]:
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 16 or any(not s or len(s) > 64 for s in stops):
            raise ValueError("must be at most 16 non-empty strings of at most 64 characters")
        return stops

    @field_validator("tests")
    @classmethod
    def _tests(cls, v: list[str] | str | None) -> list[str] | str | None:
        if isinstance(v, list) and len(v) > MAX_TESTS:
            raise ValueError(f"has {len(v)} entries; at most {MAX_TESTS}")
        return v

    @model_validator(mode="after")
    def _agreement_needs_tests(self) -> BestOfN:
        if self.rerank != "rm" and self.language != "py":
            raise ValueError("rerank agreement|combined runs Python asserts: language must be 'py'")
        if self.rerank != "rm" and not self.generated_tests:
            raise ValueError("rerank agreement|combined needs 'generated_tests' (a list of asserts)")
        return self

    @property
    def new_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class ContentPart(_Body):
    type: str = _text(32)
    text: str | None = None


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(BestOfN):
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)


class CompletionRequest(BestOfN):
    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v: str | list[str]) -> str:
        if isinstance(v, list):
            if len(v) != 1:
                raise ValueError(f"has {len(v)} prompts; this server takes one prompt per request")
            v = v[0]
        if len(v) > MAX_TEXT:
            raise ValueError(f"is {len(v)} characters; at most {MAX_TEXT}")
        return v

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v: bool) -> bool:
        if v:
            raise ValueError("echo is not supported")
        return v


class ScoreRequest(_Body):
    """Rank given candidates for one prompt: no sampling."""

    prompt: str = ""
    candidates: list[str] = Field(min_length=1, max_length=256)
    language: Language = "py"
    rerank: Literal["rm", "agreement", "combined"] = "rm"
    generated_tests: list[str] | None = Field(None, max_length=MAX_TESTS)

    @model_validator(mode="after")
    def _agreement_needs_tests(self) -> ScoreRequest:
        if self.rerank != "rm" and (self.language != "py" or not self.generated_tests):
            raise ValueError("rerank agreement|combined needs language 'py' and 'generated_tests'")
        return self


class ProgramItem(_Body):
    """One program: either `program` whole, or `prompt` + `completion` + `tests` (MultiPL-E's layout)."""

    language: Language
    program: str | None = None
    prompt: str = ""
    completion: str | None = None
    tests: list[str] | str = ""

    @model_validator(mode="after")
    def _one_form(self) -> ProgramItem:
        if (self.program is None) == (self.completion is None):
            raise ValueError("give exactly one of 'program' or 'completion' (with optional 'prompt' and 'tests')")
        return self

    def text(self) -> tuple[str, str, str]:
        """(prompt, completion, tests) to hand to the executor."""
        if self.program is not None:
            return "", self.program, ""
        tests = "\n".join(self.tests) if isinstance(self.tests, list) else self.tests
        return self.prompt, self.completion or "", tests


class ExecuteRequest(_Body):
    programs: list[ProgramItem] = Field(min_length=1, max_length=1024)
    timeout_s: float | None = Field(None, gt=0, le=60)
    verdict_rule: str | None = _text(32, default=None)


class OpenRLHFRequest(_Body):
    """OpenRLHF's remote reward-model request: full texts (prompt + response), prompts, labels (tests)."""

    query: list[str] = Field(min_length=1, max_length=4096)
    prompts: list[str] | None = None
    labels: list[Any] | None = None

    @model_validator(mode="after")
    def _same_length(self) -> OpenRLHFRequest:
        for name in ("prompts", "labels"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.query):
                raise ValueError(f"'{name}' has {len(value)} entries but 'query' has {len(self.query)}")
        return self
