"""The desktop agent: holds the unlocked vault key in memory, like ssh-agent.

* :class:`~unlatch.agent.core.AgentCore` - vault state, idle auto-lock; no I/O of its own.
* :mod:`unlatch.agent.server` - the Unix-socket transport (``agent.sock``, 0600).
* :mod:`unlatch.agent.client` - the CLI's client; starts the agent on demand.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unlatch.agent.core import AgentCore


def __getattr__(name: str) -> Any:
    # Lazy: a client of the agent (the CLI, the browser's native host) imports
    # unlatch.agent.client without paying for the core and the whole vault.
    if name == "AgentCore":
        from unlatch.agent.core import AgentCore

        return AgentCore
    raise AttributeError(name)


__all__ = ["AgentCore"]
