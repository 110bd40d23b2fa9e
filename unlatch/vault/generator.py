"""Password and passphrase generation, with the exact entropy reported.

Characters come from :mod:`secrets`. When several character sets are
chosen, a password is re-drawn until it contains at least one character of
each (so sites with "one digit" rules accept it); the entropy reported is
log2 of the number of such passwords, counted exactly by inclusion-exclusion,
not the looser ``length * log2(alphabet)``.

Passphrases use the BIP-39 English list (2048 words, 11 bits each; words
are unambiguous by their first four letters), from the ``mnemonic`` package.
"""

from __future__ import annotations

import math
import secrets
import string
from dataclasses import dataclass
from functools import cache
from itertools import combinations

from unlatch.errors import UnlatchError

SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{}~"
CHARSETS = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
    "symbols": SYMBOLS,
}
MIN_LENGTH, MAX_LENGTH = 8, 256
MIN_WORDS, MAX_WORDS = 3, 40
DEFAULT_LENGTH = 24
DEFAULT_WORDS = 6


class GeneratorError(UnlatchError):
    """The requested length, word count or character sets are unusable."""


@dataclass(frozen=True)
class Generated:
    """A generated secret and its entropy in bits."""

    value: str
    entropy_bits: float


def generate_password(
    length: int = DEFAULT_LENGTH,
    *,
    lower: bool = True,
    upper: bool = True,
    digits: bool = True,
    symbols: bool = True,
) -> Generated:
    """A random password with at least one character of each chosen set."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise GeneratorError(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}")
    chosen = [
        CHARSETS[name]
        for name, on in (
            ("lower", lower),
            ("upper", upper),
            ("digits", digits),
            ("symbols", symbols),
        )
        if on
    ]
    if not chosen:
        raise GeneratorError("choose at least one character set")
    alphabet = "".join(chosen)
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in charset for c in value) for charset in chosen):
            break
    return Generated(value, _password_entropy(length, tuple(len(c) for c in chosen)))


def _password_entropy(length: int, set_sizes: tuple[int, ...]) -> float:
    """log2 of the count of length-``length`` strings using every set at least once."""
    total = 0
    for k in range(len(set_sizes) + 1):
        for missing in combinations(set_sizes, k):
            total += (-1) ** k * (sum(set_sizes) - sum(missing)) ** length
    return math.log2(total)


@cache
def _wordlist() -> tuple[str, ...]:
    from mnemonic import Mnemonic

    words = tuple(Mnemonic("english").wordlist)
    if len(words) != 2048 or len(set(words)) != 2048:
        raise GeneratorError("the passphrase word list is damaged")
    return words


def generate_passphrase(words: int = DEFAULT_WORDS, separator: str = "-") -> Generated:
    """``words`` random words from the 2048-word list (11 bits each)."""
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise GeneratorError(f"words must be between {MIN_WORDS} and {MAX_WORDS}")
    if len(separator) > 4 or any(c.isalpha() for c in separator):
        raise GeneratorError("the separator must be at most 4 non-letter characters")
    wordlist = _wordlist()
    value = separator.join(secrets.choice(wordlist) for _ in range(words))
    return Generated(value, words * math.log2(len(wordlist)))
