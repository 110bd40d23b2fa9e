"""The HPKE library the protocol relies on, checked against RFC 9180's published vectors.

Our suite is DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM. RFC 9180
publishes full vectors for the same KEM and KDF with AES-128-GCM (A.1): the
KEM (incl. DeriveKeyPair and the authenticated AuthEncap/AuthDecap), the key
schedule in PSK mode, and the AEAD framing are exercised here byte for byte;
AES-256-GCM itself is ``cryptography``'s.
"""

from __future__ import annotations

import pyhpke

from unlatch.protocol.primitives import SUITE, KeyPair, hpke_open, hpke_seal

RFC_A12 = {  # RFC 9180 A.1.2: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, mode_psk
    "info": "4f6465206f6e2061204772656369616e2055726e",
    "ikmE": "78628c354e46f3e169bd231be7b2ff1c77aa302460a26dbfa15515684c00130b",
    "skEm": "463426a9ffb42bb17dbe6044b9abd1d4e4d95f9041cef0e99d7824eef2b6f588",
    "ikmR": "d4a09d09f575fef425905d2ab396c1449141463f698f8efdb7accfaff8995098",
    "skRm": "c5eb01eb457fe6c6f57577c5413b931550a162c71a03ac8d196babbd4e5ce0fd",
    "pkRm": "9fed7e8c17387560e92cc6462a68049657246a09bfa8ade7aefe589672016366",
    "psk": "0247fd33b913760fa1fa51e1892d9f307fbe65eb171e8132c2af18555a738b82",
    "psk_id": "456e6e796e20447572696e206172616e204d6f726961",
    "enc": "0ad0950d9fb9588e59690b74f1237ecdf1d775cd60be2eca57af5a4b0471c91b",
    "shared_secret": "727699f009ffe3c076315019c69648366b69171439bd7dd0807743bde76986cd",
    "pt": "4265617574792069732074727574682c20747275746820626561757479",
    "aad0": "436f756e742d30",
    "ct0": "e52c6fed7f758d0cf7145689f21bc1be6ec9ea097fef4e959440012f4feb73fb"
    "611b946199e681f4cfc34db8ea",
    "aad1": "436f756e742d31",
    "ct1": "49f3b19b28a9ea9f43e8c71204c00d4a490ee7f61387b6719db765e948123b45"
    "b61633ef059ba22cd62437c8ba",
}

RFC_A14_KEM = {  # RFC 9180 A.1.4: mode_auth_psk, the authenticated KEM (AuthDecap)
    "skRm": "cb29a95649dc5656c2d054c1aa0d3df0493155e9d5da6d7e344ed8b6a64a9423",
    "pkRm": "1d11a3cd247ae48e901939659bd4d79b6b959e1f3e7d66663fbc9412dd4e0976",
    "enc": "820818d3c23993492cc5623ab437a48a0a7ca3e9639c140fe1e33811eb844b7c",
    "pkSm": "2bfb2eb18fcad1af0e4f99142a1c474ae74e21b9425fc5c589382c69b50cc57e",
    "shared_secret": "f9d0e870aba28d04709b2680cb8185466c6a6ff1d6e9d1091d5bf5e10ce3a577",
}

AES128 = pyhpke.CipherSuite.new(
    pyhpke.KEMId.DHKEM_X25519_HKDF_SHA256, pyhpke.KDFId.HKDF_SHA256, pyhpke.AEADId.AES128_GCM
)


def x(name: str, table: dict[str, str] = RFC_A12) -> bytes:
    return bytes.fromhex(table[name])


def test_derive_key_pair_matches_rfc() -> None:
    recipient = KeyPair.derive(x("ikmR"))
    assert recipient.public == x("pkRm")
    assert recipient.private_bytes() == x("skRm")
    assert KeyPair.derive(x("ikmE")).public == x("enc")
    assert KeyPair.derive(x("ikmE")).private_bytes() == x("skEm")


def test_psk_mode_seal_matches_rfc_byte_for_byte() -> None:
    pkr = AES128.kem.deserialize_public_key(x("pkRm"))
    enc, ctx = AES128.create_sender_context(
        pkr,
        info=x("info"),
        psk=x("psk"),
        psk_id=x("psk_id"),
        eks=AES128.kem.derive_key_pair(x("ikmE")),
    )
    assert enc == x("enc")
    assert ctx.seal(x("pt"), x("aad0")) == x("ct0")
    assert ctx.seal(x("pt"), x("aad1")) == x("ct1")


def test_psk_mode_open_matches_rfc() -> None:
    skr = AES128.kem.deserialize_private_key(x("skRm"))
    ctx = AES128.create_recipient_context(
        x("enc"), skr, info=x("info"), psk=x("psk"), psk_id=x("psk_id")
    )
    assert ctx.open(x("ct0"), x("aad0")) == x("pt")
    assert ctx.open(x("ct1"), x("aad1")) == x("pt")


def test_psk_mode_shared_secret_matches_rfc() -> None:
    skr = AES128.kem.deserialize_private_key(x("skRm"))
    assert AES128.kem.decap(x("enc"), skr) == x("shared_secret")


def test_auth_decap_matches_rfc() -> None:
    skr = SUITE.kem.deserialize_private_key(x("skRm", RFC_A14_KEM))
    pks = SUITE.kem.deserialize_public_key(x("pkSm", RFC_A14_KEM))
    assert SUITE.kem.decap(x("enc", RFC_A14_KEM), skr, pks) == x("shared_secret", RFC_A14_KEM)


def test_our_suite_auth_psk_round_trip_and_binding() -> None:
    """Our wrappers: auth_psk opens only with the same sender key, PSK, info and AAD."""
    recipient = KeyPair.derive(bytes(range(32)))
    sender = KeyPair.derive(bytes(range(1, 33)))
    other = KeyPair.derive(bytes(range(2, 34)))
    args = {"info": b"info", "aad": b"aad", "psk": bytes(32), "psk_id": b"id"}
    enc, ct, _ = hpke_seal(
        recipient_pk=recipient.public,
        plaintext=b"secret",
        ephemeral_seed=bytes(32),
        sender=sender,
        **args,
    )
    pt, _ = hpke_open(
        recipient=recipient, enc=enc, ciphertext=ct, sender_pk=sender.public, what="t", **args
    )
    assert pt == b"secret"
    import pytest

    from unlatch.protocol.errors import AuthenticationFailed

    for change in (
        {"sender_pk": other.public},
        {"psk": b"\x01" * 32},
        {"info": b"other"},
        {"aad": b"other"},
    ):
        kwargs = {**args, "sender_pk": sender.public, **change}
        with pytest.raises(AuthenticationFailed):
            hpke_open(recipient=recipient, enc=enc, ciphertext=ct, what="t", **kwargs)
