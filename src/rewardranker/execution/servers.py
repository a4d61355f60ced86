"""Persistent compilers (Java, TypeScript, C#), one per worker, each in its own sandbox. Filled in below."""

from __future__ import annotations


def start(language: str, slot):
    return None
