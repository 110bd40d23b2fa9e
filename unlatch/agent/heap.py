"""The agent process's garbage collector: full collections that skip the start-up heap.

The agent lives for hours, and its start-up (the vault, the desktop UI's web
server and its libraries, the relay client) leaves a few hundred thousand
objects that live as long as the process. CPython's full (generation 2)
collection walks every one of them: about 18 ms on the development VM, in
the middle of whatever the event loop was doing, about once per 200 phone
unlocks (issue 15, docs/deploy.md). :func:`settle` collects once and then
freezes what is alive (:func:`gc.freeze`): later collections walk only the
objects made since. Frozen objects are still freed by reference counting when
dropped; only a frozen object that ends up in a reference cycle is kept, and
the start-up heap is not dropped before the process ends. Nothing is copied:
the vault key stays in its one buffer, zeroed at lock as before.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Start-up is over: collect, then take what is alive out of the collector's walks."""
    gc.collect()
    gc.freeze()


__all__ = ["settle"]
