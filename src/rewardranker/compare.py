"""Compare two sets of verdicts candidate by candidate, e.g. ours against a MultiPL-E results folder."""

from __future__ import annotations

from dataclasses import replace

from rewardranker.records import SampleKey, Verdict

# MultiPL-E statuses we report under another name (README: JS/TS AssertionError and ReferenceError are Exception)
_SAME_STATUS = {"AssertionError": "Exception", "ReferenceError": "Exception"}


def compare_verdicts(ours: list[Verdict], theirs: list[Verdict]) -> dict:
    """Counts of agreement on `passed` and on status per language, plus every disagreement and unmatched key."""
    ours, theirs = _with_languages(ours, theirs), _with_languages(theirs, ours)
    a = {v.key: v for v in ours}
    b = {v.key: v for v in theirs}
    languages = sorted({k[0] for k in a} | {k[0] for k in b})
    per_language = {lang: {"compared": 0, "same_passed": 0, "same_status": 0, "only_ours": 0, "only_theirs": 0}
                    for lang in languages}
    disagreements = []
    for key in sorted(set(a) | set(b)):
        row = per_language[key[0]]
        if key not in b:
            row["only_ours"] += 1
            continue
        if key not in a:
            row["only_theirs"] += 1
            continue
        va, vb = a[key], b[key]
        row["compared"] += 1
        row["same_passed"] += va.passed == vb.passed
        row["same_status"] += _status(va.status) == _status(vb.status)
        if va.passed != vb.passed or _status(va.status) != _status(vb.status):
            disagreements.append(_disagreement(key, va, vb))
    total = {f: sum(r[f] for r in per_language.values()) for f in
             ("compared", "same_passed", "same_status", "only_ours", "only_theirs")}
    return {"overall": total, "per_language": per_language, "disagreements": disagreements}


def _with_languages(verdicts: list[Verdict], other: list[Verdict]) -> list[Verdict]:
    """Verdicts without a language (older files) take the one their problem id has on the other side, if only one."""
    if all(v.language for v in verdicts):
        return verdicts
    langs: dict[str, set[str]] = {}
    for v in other:
        langs.setdefault(v.problem_id, set()).add(v.language)
    return [replace(v, language=next(iter(langs[v.problem_id])))
            if not v.language and len(langs.get(v.problem_id, ())) == 1 else v for v in verdicts]


def _status(status: str) -> str:
    return _SAME_STATUS.get(status, status)


def _disagreement(key: SampleKey, va: Verdict, vb: Verdict) -> dict:
    return {"language": key[0], "problem_id": key[1], "sample_id": key[2],
            "ours": {"status": va.status, "passed": va.passed, "exit_code": va.exit_code},
            "theirs": {"status": vb.status, "passed": vb.passed, "exit_code": vb.exit_code}}


def comparison_table(report: dict, show: int = 20):
    """A rich Table of agreement per language, followed by the first `show` disagreements."""
    from rich.console import Group
    from rich.table import Table

    counts = Table(title="verdicts compared candidate by candidate")
    for col in ("language", "compared", "same passed", "same status", "only ours", "only theirs"):
        counts.add_column(col, justify="left" if col == "language" else "right")
    rows = {**report["per_language"], "all": report["overall"]}
    for name, r in rows.items():
        counts.add_row(name, str(r["compared"]), _ratio(r["same_passed"], r["compared"]),
                       _ratio(r["same_status"], r["compared"]), str(r["only_ours"]), str(r["only_theirs"]))
    if not report["disagreements"] or show <= 0:
        return counts
    diff = Table(title=f"disagreements (first {min(show, len(report['disagreements']))} of "
                       f"{len(report['disagreements'])})")
    for col in ("language", "problem", "sample", "ours", "theirs"):
        diff.add_column(col)
    for d in report["disagreements"][:show]:
        diff.add_row(d["language"], d["problem_id"], str(d["sample_id"]),
                     f"{d['ours']['status']} ({'pass' if d['ours']['passed'] else 'fail'})",
                     f"{d['theirs']['status']} ({'pass' if d['theirs']['passed'] else 'fail'})")
    return Group(counts, diff)


def _ratio(n: int, total: int) -> str:
    return f"{n}/{total}" + (f" ({100 * n / total:.1f}%)" if total else "")
