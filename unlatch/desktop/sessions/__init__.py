"""The desktop's sessions: sans-IO state machines one layer above the protocol.

:mod:`.unlock` (one "Request unlock from phone" press) and :mod:`.pairing`
(one pairing attempt) each have an enum state and one transition table
(:mod:`.base`); their asyncio drivers are ``unlatch/desktop/unlock.py`` and
``unlatch/desktop/pairing.py``. See docs/desktop.md, "Sessions".
"""
