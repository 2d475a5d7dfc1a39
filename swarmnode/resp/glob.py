"""Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE) as compiled regular expressions.

The rules of Redis's `stringmatchlen`, which differ from fnmatch's: `[^a]` negates
(fnmatch wants `[!a]`), a backslash escapes the next character anywhere, a range
may be written backwards (`[z-a]`), and an unclosed `[` runs to the end of the
pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex that matches a whole string exactly when Redis's glob `pattern` does."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i + 1 < n and pattern[i + 1] == "*":
                i += 1
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i, cls = _char_class(pattern, i + 1)
            out.append(cls)
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _char_class(pattern: str, i: int) -> tuple[int, str]:
    """The class starting after `[` at `i`: (index after its `]`, regex class)."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    items: list[str] = []
    while i < n and pattern[i] != "]":
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            i += 1
            items.append(re.escape(pattern[i]))
        elif i + 2 < n and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            lo, hi = sorted((c, pattern[i + 2]))
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 2
        else:
            items.append(re.escape(c))
        i += 1
    if not items:
        # `[]` matches nothing in Redis, `[^]` any one character.
        return i + 1, "." if negate else "(?!)"
    return i + 1, f"[{'^' if negate else ''}{''.join(items)}]"


def glob_match(pattern: str, text: str) -> bool:
    return compile_glob(pattern).fullmatch(text) is not None


def literal_prefix(pattern: str) -> str:
    """The text every match starts with: the pattern up to its first wildcard, unescaped."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c in "*?[":
            break
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        out.append(c)
        i += 1
    return "".join(out)
