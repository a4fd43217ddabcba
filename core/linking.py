"""One-time link tokens that tie a Telegram user to an account with a role."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.accounts import Role

LINK_TOKEN_TTL = timedelta(minutes=15)
TOKEN_BYTES = 24  # 192 bits; base64url gives 32 deep-link-safe characters
_DEEP_LINK_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_token(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A fresh token for a t.me deep link: only A-Z a-z 0-9 _ -, at most 64 characters."""
    return base64.urlsafe_b64encode(random_bytes(TOKEN_BYTES)).decode("ascii").rstrip("=")


def looks_like_token(value: str) -> bool:
    return bool(_DEEP_LINK_SAFE.match(value))


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256; a leaked table links nobody."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class LinkToken:
    token_hash: str
    account_id: int
    role: Role
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by_user_id: int | None = None

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at
