"""Settings: every one is documented in .env.example, and production refuses placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_listed_with_a_comment_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} <= listed
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]+=", line):
            above = [x for x in lines[max(0, i - 6) : i] if x.startswith("#")]
            assert above, f"{line.split('=')[0]} has no comment above it"


def test_production_refuses_an_empty_bot_token() -> None:
    with pytest.raises(ValidationError, match="TELEGRAM_BOT_TOKEN"):
        Settings(environment="production", _env_file=None)  # type: ignore[call-arg]


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings(
        telegram_bot_token="123456:ABCDEF-secret",  # type: ignore[arg-type]
        twilio_auth_token="twilio-secret",  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    assert "ABCDEF-secret" not in repr(settings)
    assert "twilio-secret" not in repr(settings)


def test_an_unknown_default_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        Settings(default_timezone="America/Atlantis", _env_file=None)  # type: ignore[call-arg]
