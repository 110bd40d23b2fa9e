"""Errors of the agent and its socket protocol."""

from __future__ import annotations

from unlatch.errors import UnlatchError


class AgentError(UnlatchError):
    """The agent could not be reached or answered something unexpected."""


class AgentNotRunningError(AgentError):
    """No agent listens on the socket."""


class AgentAlreadyRunningError(AgentError):
    """Another agent already serves this ``UNLATCH_HOME``.

    Its exit code tells a client that spawned an agent which lost the start
    race to keep waiting for the winner's socket rather than give up.
    """

    exit_code = 3


class AgentStartError(AgentError):
    """A spawned agent exited (or never listened) instead of serving the socket."""


class BadRequestError(AgentError):
    """A request on the socket was malformed, too large or named an unknown operation."""


class NoVaultError(AgentError):
    """There is no vault yet in this ``UNLATCH_HOME``."""

    def __init__(self, message: str = "no vault yet: run `unlatch init`") -> None:
        super().__init__(message)
