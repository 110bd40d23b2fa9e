"""Password / passphrase generator and TOTP codes."""

from __future__ import annotations

import math
import string

import pytest

from unlatch.vault import totp
from unlatch.vault.errors import InvalidItemError
from unlatch.vault.generator import (
    SYMBOLS,
    GeneratorError,
    generate_passphrase,
    generate_password,
)


def test_password_uses_every_chosen_set_and_only_those() -> None:
    for _ in range(200):
        pw = generate_password(8).value
        assert len(pw) == 8
        for charset in (string.ascii_lowercase, string.ascii_uppercase, string.digits, SYMBOLS):
            assert any(c in charset for c in pw)
    digits_only = generate_password(12, lower=False, upper=False, symbols=False)
    assert digits_only.value.isdigit()
    assert math.isclose(digits_only.entropy_bits, 12 * math.log2(10))


def test_entropy_counts_the_every_set_rule_exactly() -> None:
    # Length 8 over lower+digits with both required: 36^8 - 26^8 - 10^8 strings.
    g = generate_password(8, upper=False, symbols=False)
    assert math.isclose(g.entropy_bits, math.log2(36**8 - 26**8 - 10**8))
    assert g.entropy_bits < 8 * math.log2(36)


def test_passphrase() -> None:
    g = generate_passphrase(5, separator=".")
    words = g.value.split(".")
    assert len(words) == 5 and all(w.isalpha() and w.islower() for w in words)
    assert g.entropy_bits == 55.0
    assert generate_passphrase().value != generate_passphrase().value


@pytest.mark.parametrize(
    "call",
    [
        lambda: generate_password(7),
        lambda: generate_password(300),
        lambda: generate_password(10, lower=False, upper=False, digits=False, symbols=False),
        lambda: generate_passphrase(2),
        lambda: generate_passphrase(4, separator="abc"),
    ],
)
def test_bad_requests_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GeneratorError):
        call()


def test_totp_rfc6238_vectors() -> None:
    # RFC 6238 appendix B, SHA1 key "12345678901234567890" (base32 below), 8 digits.
    secret = "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8"
    assert totp.current_code(secret, at=59) == ("94287082", 1)
    assert totp.current_code(secret, at=1111111109)[0] == "07081804"
    assert totp.current_code(secret, at=2000000000)[0] == "69279037"
    code, remaining = totp.current_code("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", at=59)
    assert code == "287082" and remaining == 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "!!!!",
        "AAAA",
        "otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQ",
        "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=12",
    ],
)
def test_totp_bad_secrets(bad: str) -> None:
    with pytest.raises(InvalidItemError):
        totp.parse(bad)
