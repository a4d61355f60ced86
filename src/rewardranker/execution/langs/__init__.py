"""Language backends, one module per language: the only place language specifics live."""

from __future__ import annotations

import importlib

from rewardranker.execution.langs.base import Job, Language
from rewardranker.records import LANGUAGES

_MODULES = {"py": "py", "cpp": "cpp", "java": "java", "php": "php", "ts": "ts", "js": "js", "cs": "cs", "sh": "sh"}
assert set(_MODULES) == set(LANGUAGES)


def get(language: str) -> Language:
    """The backend for a MultiPL-E language code."""
    return importlib.import_module(f"rewardranker.execution.langs.{_MODULES[language]}").LANGUAGE


__all__ = ["Job", "Language", "get"]
