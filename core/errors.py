"""Domain errors: each carries a stable code and the data a message needs."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the user can be told about; `code` is stable, `data` fills the message."""

    code: str = "domain_error"

    def __init__(self, message: str = "", /, **data: Any) -> None:
        self.data: dict[str, Any] = data
        super().__init__(message or self.code)

    def __str__(self) -> str:
        base = self.args[0] if self.args else self.code
        return str(base)


class NotFound(DomainError):
    code = "not_found"


class NotAllowed(DomainError):
    code = "not_allowed"


class InvalidState(DomainError):
    code = "invalid_state"


class InsufficientCredits(DomainError):
    code = "insufficient_credits"


class InvalidInput(DomainError):
    code = "invalid_input"


class ChannelUnavailable(DomainError):
    code = "channel_unavailable"


class CooldownActive(ChannelUnavailable):
    code = "cooldown"


class LinkTokenInvalid(DomainError):
    code = "link_token_invalid"


class QuoteChanged(DomainError):
    code = "quote_changed"


class CapReached(DomainError):
    code = "cap_reached"


class Conflict(DomainError):
    """Someone else changed the same thing first; nothing was written, try again."""

    code = "conflict"
