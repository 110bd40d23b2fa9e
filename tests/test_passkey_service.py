"""PasskeyService against a real AgentCore and vault, with a software authenticator.

The browser tests cannot make an authenticator lie; this one can. It builds
real WebAuthn responses (CBOR attestation objects, ES256 signatures, PRF
outputs computed as CTAP2 hmac-secret does) and can skip user verification,
sign for another RP id or origin, rewind its counter or drop PRF - each of
which the agent must refuse, leaving the vault locked.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures.softauthn import ORIGIN, PORT, SoftAuthenticator, b64u
from fixtures.vault import PASSWORD

from unlatch.agent.core import AgentCore
from unlatch.desktop.passkey import (
    Ceremonies,
    CeremonyExpiredError,
    NoPasskeysError,
    PasskeyError,
    PasskeyNotFoundError,
    PasskeyRejectedError,
    PasskeyService,
    PasskeySlot,
    PrfUnsupportedError,
    SignCounters,
    UnknownPasskeyError,
    WrongHostError,
    b64url_decode,
)
from unlatch.vault import OWASP_MINIMUM, VaultLockedError

SESSION = "session-token-a"


@pytest.fixture
async def service(tmp_path: Path, unlatch_home: Path) -> Any:
    core = AgentCore(tmp_path / "vault.db", 0)
    await core.init_vault(PASSWORD, OWASP_MINIMUM)
    svc = PasskeyService(core, lambda: PORT, counters=SignCounters(tmp_path / "counters.json"))
    yield svc
    await core.close()


async def register(svc: PasskeyService, auth: SoftAuthenticator, label: str = "key") -> str:
    options = await svc.registration_options(SESSION, label)
    result = await svc.register(SESSION, options["token"], auth.create(options))
    return str(result["passkey"]["id"])


async def unlock(svc: PasskeyService, auth: SoftAuthenticator, **kw: Any) -> dict[str, Any]:
    options = await svc.unlock_options(SESSION)
    return await svc.unlock(SESSION, options["token"], auth.get(options, **kw))


async def test_passkey_register_options_are_what_the_brief_asks(service: PasskeyService) -> None:
    first = SoftAuthenticator()
    await register(service, first)
    options = (await service.registration_options(SESSION, "second"))["publicKey"]
    assert options["rp"] == {"id": "localhost", "name": "unlatch"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert len(b64url_decode(options["challenge"], "c")) == 32
    assert len(b64url_decode(options["extensions"]["prf"]["eval"]["first"], "salt")) == 32
    # The already registered credential is excluded (no second slot for one authenticator).
    assert [c["id"] for c in options["excludeCredentials"]] == [b64u(first.credential_id)]


async def test_passkey_register_lock_unlock_and_manage(service: PasskeyService) -> None:
    auth = SoftAuthenticator()
    slot_id = await register(service, auth, "YubiKey")
    (slot,) = await service.slots()
    assert slot.id == slot_id and slot.label == "YubiKey" and len(slot.salt) == 32
    await service.core.lock()
    options = await service.unlock_options(SESSION)
    pk = options["publicKey"]
    assert pk["userVerification"] == "required" and pk["rpId"] == "localhost"
    assert [c["id"] for c in pk["allowCredentials"]] == [slot.credential_id]
    assert pk["extensions"]["prf"]["evalByCredential"][slot.credential_id]["first"] == b64u(
        slot.salt
    )
    result = await service.unlock(SESSION, options["token"], auth.get(options))
    assert result["unlocked"] is True and service.core.is_unlocked
    assert service.counters.get(slot.credential_id, -1) == 1

    # The passkey routes cannot touch other kinds of slots (e.g. the master password's).
    (password_slot,) = await service.core.find_slots("password")
    for touch in (service.remove(password_slot.id), service.rename(password_slot.id, "x")):
        with pytest.raises(PasskeyNotFoundError):
            await touch
    assert len(await service.core.find_slots("password")) == 1

    renamed = await service.rename(slot_id, "Blue key")
    assert renamed["label"] == "Blue key"
    await service.remove(slot_id)
    assert await service.slots() == []
    assert service.counters.get(slot.credential_id, -1) == -1  # counter forgotten too
    await service.core.lock()
    with pytest.raises(NoPasskeysError):
        await service.unlock_options(SESSION)


async def test_passkey_prf_by_follow_up_assertion(service: PasskeyService) -> None:
    """PRF enabled at creation but not evaluated: one verified assertion supplies it."""
    auth = SoftAuthenticator()
    options = await service.registration_options(SESSION, "late PRF")
    follow = await service.register(SESSION, options["token"], auth.create(options, eval_prf=False))
    assert "passkey" not in follow and await service.slots() == []
    salt = options["publicKey"]["extensions"]["prf"]["eval"]["first"]
    evals = follow["publicKey"]["extensions"]["prf"]["evalByCredential"]
    assert evals == {b64u(auth.credential_id): {"first": salt}}  # the same slot salt
    done = await service.register_prf(SESSION, follow["token"], auth.get(follow))
    assert done["passkey"]["label"] == "late PRF"
    await service.core.lock()
    await unlock(service, auth)
    assert service.core.is_unlocked


async def test_passkey_without_prf_is_refused(service: PasskeyService) -> None:
    auth = SoftAuthenticator(prf=False)
    options = await service.registration_options(SESSION, "no prf")
    with pytest.raises(PrfUnsupportedError, match="does not support the WebAuthn PRF"):
        await service.register(SESSION, options["token"], auth.create(options))
    assert await service.slots() == []


async def test_passkey_registration_checks(service: PasskeyService) -> None:
    cases: list[tuple[str, Any]] = [
        ("uv", {"uv": False}),
        ("rp", {"rp_id": "evil.example"}),
        ("origin", {"origin": f"http://127.0.0.1:{PORT}"}),
    ]
    for name, change in cases:
        auth = SoftAuthenticator(uv=change.get("uv", True))
        auth.rp_id = change.get("rp_id", auth.rp_id)
        auth.origin = change.get("origin", auth.origin)
        options = await service.registration_options(SESSION, name)
        with pytest.raises(PasskeyRejectedError, match="did not verify"):
            await service.register(SESSION, options["token"], auth.create(options))
    assert await service.slots() == []
    # Registration needs the vault unlocked.
    await service.core.lock()
    with pytest.raises(VaultLockedError):
        await service.registration_options(SESSION, "x")


async def test_passkey_unlock_refusals_leave_the_vault_locked(service: PasskeyService) -> None:
    auth = SoftAuthenticator()
    await register(service, auth)
    await service.core.lock()

    auth.uv = False  # the authenticator skipped the PIN / biometric
    with pytest.raises(PasskeyRejectedError, match="User verification"):
        await unlock(service, auth)
    auth.uv = True

    auth.origin = "http://localhost:1"  # made for another origin
    with pytest.raises(PasskeyRejectedError, match="origin"):
        await unlock(service, auth)
    auth.origin = ORIGIN

    await unlock(service, auth, counter_step=5)  # counter now 7 (1 + 1 + 5)
    await service.core.lock()
    with pytest.raises(PasskeyRejectedError, match="sign count"):  # a cloned authenticator
        await unlock(service, auth, counter_step=-3)
    assert not service.core.is_unlocked

    # A correct signature but a wrong PRF output: verified, yet it opens nothing.
    options = await service.unlock_options(SESSION)
    answer = auth.get(options, counter_step=10)
    answer["clientExtensionResults"]["prf"]["results"]["first"] = b64u(os.urandom(32))
    with pytest.raises(PasskeyRejectedError, match="did not open the vault"):
        await service.unlock(SESSION, options["token"], answer)

    # No PRF output at all.
    options = await service.unlock_options(SESSION)
    answer = auth.get(options, counter_step=1)
    answer["clientExtensionResults"] = {}
    with pytest.raises(PasskeyRejectedError, match="PRF"):
        await service.unlock(SESSION, options["token"], answer)

    # Another authenticator (unregistered credential).
    with pytest.raises(UnknownPasskeyError):
        await unlock(service, SoftAuthenticator())
    assert not service.core.is_unlocked
    await unlock(service, auth)
    assert service.core.is_unlocked


async def test_passkey_challenges_are_single_use_per_session_and_short_lived(
    service: PasskeyService,
) -> None:
    auth = SoftAuthenticator()
    await register(service, auth)
    await service.core.lock()
    options = await service.unlock_options(SESSION)
    answer = auth.get(options)
    with pytest.raises(CeremonyExpiredError):  # another UI session cannot use it
        await service.unlock("another-session", options["token"], answer)
    with pytest.raises(CeremonyExpiredError):  # ...and that attempt used it up
        await service.unlock(SESSION, options["token"], answer)
    options = await service.unlock_options(SESSION)
    await service.unlock(SESSION, options["token"], auth.get(options))
    await service.core.lock()
    with pytest.raises(CeremonyExpiredError):  # replay
        await service.unlock(SESSION, options["token"], auth.get(options))

    short = Ceremonies(life=0.05, limit=3)
    token, _ = short.issue("unlock", SESSION)
    await asyncio.sleep(0.1)
    with pytest.raises(CeremonyExpiredError):
        short.take(token, "unlock", SESSION)
    tokens = [short.issue("unlock", SESSION)[0] for _ in range(5)]
    assert len(short) == 3  # bounded: the oldest were dropped
    with pytest.raises(CeremonyExpiredError):
        short.take(tokens[0], "unlock", SESSION)
    short.take(tokens[-1], "unlock", SESSION)
    with pytest.raises(CeremonyExpiredError):  # a registration token is no unlock token
        short.take(tokens[-2], "register", SESSION)


async def test_passkey_host_check_and_garbage(service: PasskeyService) -> None:
    service.check_host(f"localhost:{PORT}")
    for host in (f"127.0.0.1:{PORT}", "localhost:1", "evil.example", ""):
        with pytest.raises(WrongHostError, match="only on http://localhost"):
            service.check_host(host)
    auth = SoftAuthenticator()
    await register(service, auth)
    garbage: list[Any] = [
        None,
        [],
        {"rawId": "%%%"},
        {"rawId": b64u(os.urandom(2000))},
        {"rawId": b64u(auth.credential_id), "response": "x"},
    ]
    for cred in garbage:
        options = await service.unlock_options(SESSION)
        with pytest.raises(PasskeyError) as info:
            await service.unlock(SESSION, options["token"], cred)
        assert str(info.value)
    # A damaged slot meta is skipped, not a crash.
    (slot,) = await service.core.find_slots("passkey")
    broken = type(slot)(slot.id, slot.kind, slot.label, slot.created_at, {"salt": "x"})
    assert PasskeySlot.from_slot(broken) is None
