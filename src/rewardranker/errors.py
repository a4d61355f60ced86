"""The one exception hierarchy: domain code raises these, the CLI turns them into exit code 1."""

from __future__ import annotations

from pathlib import Path


class RewardRankerError(Exception):
    """Base class for every error a user can cause and fix."""


class ConfigError(RewardRankerError):
    """A configuration field has a wrong value."""

    def __init__(self, field: str, message: str, source: str | Path | None = None):
        self.field = field
        where = f"{source}: " if source else ""
        sep = " " if message.startswith("=") else ": "  # "field 'x' = 3 must be > 0" reads as one sentence
        super().__init__(f"{where}field '{field}'{sep}{message}")


class RecordError(RewardRankerError):
    """A JSONL record is malformed: names the file, the line and the field."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, message: str):
        self.path, self.line, self.field = Path(path), line, field
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}")


class ToolchainError(RewardRankerError):
    """A language toolchain is missing or broken."""

    def __init__(self, lang: str, cmd: str, message: str):
        self.lang, self.cmd = lang, cmd
        super().__init__(f"{lang}: `{cmd}`: {message}")


class SandboxError(RewardRankerError):
    """The sandbox cannot be set up, or the user did not allow running unsandboxed."""
