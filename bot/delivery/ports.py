"""What the outbox worker needs from a sender: one send, and for Twilio a message lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.delivery import Attempt
from core.notifications import Notification
from storage.outbox import DeliveryContext


@dataclass(frozen=True)
class Job:
    """One send: the outbox row, what the message talks about, and the signing link."""

    context: DeliveryContext
    link: str

    @property
    def notification(self) -> Notification:
        return self.context.notification


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider's API lists it (for reconciling an `unknown` row)."""

    sid: str
    status: str
    error_code: str | None
    to: str
    created_at: datetime | None


class EmailSending(Protocol):
    async def send(self, job: Job) -> Attempt: ...


class MessageSending(Protocol):
    async def send(self, job: Job) -> Attempt:
        """Create the message once; retried only when the provider surely never took it."""
        ...

    async def lookup(self, notification: Notification, since: datetime) -> list[ProviderMessage]:
        """Messages that may be this row's: by its SID if known, else by destination and time."""
        ...
