"""Reversible whitespace encoding: makes newlines, indentation and tabs visible to tokenizers that drop them.

MiniLM's uncased WordPiece tokenizer splits on whitespace, so `if x:\\n    return` and `if x: return` look the
same to it. Encoding each newline as ` ¶ ` and leading indentation as `»` (4 spaces), `·` (1 space) and `¦`
(tab) keeps the structure; all five marker characters are in BERT's vocabulary. Marker characters already in
the code are escaped with `§`, so `decode_whitespace(encode_whitespace(s)) == s` for every string.
"""

from __future__ import annotations

NEWLINE, INDENT4, SPACE, TAB, ESCAPE = "¶", "»", "·", "¦", "§"
_MARKERS = (NEWLINE, INDENT4, SPACE, TAB, ESCAPE)
_SEP = f" {NEWLINE} "


def _escape(text: str) -> str:
    return "".join(ESCAPE + ch if ch in _MARKERS else ch for ch in text)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == ESCAPE and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _encode_line(line: str) -> str:
    body = line.lstrip(" \t")
    lead = line[: len(line) - len(body)]
    marks = []
    i = 0
    while i < len(lead):
        if lead.startswith("    ", i):
            marks.append(INDENT4)
            i += 4
        else:
            marks.append(SPACE if lead[i] == " " else TAB)
            i += 1
    return ("".join(marks) + " " if marks else "") + _escape(body)


def encode_whitespace(code: str) -> str:
    """Code with newlines and leading indentation replaced by visible marker words."""
    return _SEP.join(_encode_line(line) for line in code.split("\n"))


def _decode_line(text: str) -> str:
    i, lead = 0, []
    expand = {INDENT4: "    ", SPACE: " ", TAB: "\t"}
    while i < len(text) and text[i] in expand:
        lead.append(expand[text[i]])
        i += 1
    body = text[i + 1:] if lead else text  # a single space separates the markers from the line
    return "".join(lead) + _unescape(body)


def decode_whitespace(text: str) -> str:
    """Inverse of `encode_whitespace`."""
    lines, current, i = [], [], 0
    while i < len(text):
        if text[i] == ESCAPE and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
        elif text.startswith(_SEP, i):
            lines.append("".join(current))
            current, i = [], i + len(_SEP)
        else:
            current.append(text[i])
            i += 1
    lines.append("".join(current))
    return "\n".join(_decode_line(line) for line in lines)


def tokenizer_keeps_whitespace(tokenizer) -> bool:
    """True when decoding the tokens of an indented two-line snippet gives the newline and indent back."""
    probe = "a\n    b"
    ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
    return "\n    b" in tokenizer.decode(ids)
