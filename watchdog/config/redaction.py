"""Masking secrets in text: any piece of a secret, not just the whole value.

Whole-value replacement leaked the rest: a cron error quoting one field of a `${VAR}` value showed
`ENV-T0KEN-cron`, a piece of the token. A `Redactor` masks every position of a text covered by some
`min_piece`-character piece (n-gram) of a secret, so any substring of that length or more goes,
wherever it is cut. It over-masks rather than under-masks (a word the text shares with a secret goes
too), so the length is chosen per use: `redact_quoted` masks pieces of 4 inside the quoted values a
message echoes and pieces of 12 anywhere, so the message's own words ("secret", "cron") survive.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MIN_PIECE = 4  # shorter pieces ("a", "ab1") are too common to mask and tell an attacker too little
MASK = "***"
# A YAML key that looks like a URL or a credential is a secret typed in the wrong place.
_SECRET_KEY = re.compile(r"://|[^\s@/]+:[^\s@/]+@|(?:token|password|passwd|secret|api_?key)=", re.IGNORECASE)


class Redactor:
    """Masks every substring of MIN_PIECE or more characters of the given secrets."""

    def __init__(self, secrets: Iterable[str], min_piece: int = MIN_PIECE) -> None:
        self.min_piece = min_piece
        self._pieces: set[str] = set()
        for secret in secrets:
            if len(secret) < min_piece:
                continue
            self._pieces.update(secret[i : i + min_piece] for i in range(len(secret) - min_piece + 1))

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def __call__(self, text: str) -> str:
        n = self.min_piece
        if not self._pieces or len(text) < n:
            return text
        covered_to = -1  # end (exclusive) of the masked run being built
        runs: list[tuple[int, int]] = []
        for i in range(len(text) - n + 1):
            if text[i : i + n] in self._pieces:
                if runs and i <= covered_to:
                    runs[-1] = (runs[-1][0], i + n)
                else:
                    runs.append((i, i + n))
                covered_to = i + n
        if not runs:
            return text
        out: list[str] = []
        last = 0
        for start, end in runs:
            out.append(text[last:start])
            out.append(MASK)
            last = end
        out.append(text[last:])
        return "".join(out)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
LONG_PIECE = 12  # outside quotes: longer than any word of ours ("heartbeats"), so none matches by chance


def redact_quoted(text: str, secrets: Iterable[str]) -> str:
    """Mask pieces of 4+ characters of `secrets` in the quoted values of `text`, and of 12+ anywhere."""
    values = list(secrets)
    short, long = Redactor(values), Redactor(values, LONG_PIECE)
    if not short:
        return text
    return long(_QUOTED.sub(lambda m: short(m.group(0)), text))


def looks_like_secret_key(key: str) -> bool:
    """A mapping key that is a URL, `user:pass@…` or `token=…`: a secret typed as a key by mistake."""
    return bool(_SECRET_KEY.search(key))
