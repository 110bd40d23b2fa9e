"""Errors of the agent and its socket protocol."""

from __future__ import annotations

from unlatch.errors import UnlatchError


class AgentError(UnlatchError):
    """The agent could not be reached or answered something unexpected."""


class AgentNotRunningError(AgentError):
    """No agent listens on the socket."""


class BadRequestError(AgentError):
    """A request on the socket was malformed, too large or named an unknown operation."""


class NoVaultError(AgentError):
    """There is no vault yet in this ``UNLATCH_HOME``."""

    def __init__(self, message: str = "no vault yet: run `unlatch init`") -> None:
        super().__init__(message)
