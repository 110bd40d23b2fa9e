"""unlatch: unlock your password vault on the desktop with your phone.

Sub-packages by responsibility:

* :mod:`unlatch.protocol` - the sans-IO unlock protocol (pairing, phone unlock).
* :mod:`unlatch.vault` - the encrypted vault file and its key slots.
* :mod:`unlatch.agent` - the desktop agent holding the unlocked key in memory.
* :mod:`unlatch.desktop` - the desktop's local web UI served by the agent.
* :mod:`unlatch.relay` - the zero-knowledge relay server ("the service").
* :mod:`unlatch.push` - Web Push (VAPID, RFC 8291) and UnifiedPush delivery.
* :mod:`unlatch.phone` - the Python phone client.
* :mod:`unlatch.cli` - the ``unlatch`` command line.
"""

__version__ = "0.1.0"
