"""The desktop agent: holds the unlocked vault key in memory, like ssh-agent.

* :class:`~unlatch.agent.core.AgentCore` - vault state, idle auto-lock; no I/O of its own.
* :mod:`unlatch.agent.server` - the Unix-socket transport (``agent.sock``, 0600).
* :mod:`unlatch.agent.client` - the CLI's client; starts the agent on demand.
"""

from unlatch.agent.core import AgentCore

__all__ = ["AgentCore"]
