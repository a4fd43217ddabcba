"""Settings, read once at start from the environment or `.env` (see `.env.example`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = f"sqlite:///{Path('lacre.db').absolute()}"
_PLACEHOLDERS = {"", "changeme", "change-me", "xxx", "your-token-here", "placeholder"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_bot_username: str = ""
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: SecretStr = SecretStr("")
    database_url: str = DEFAULT_DATABASE_URL
    public_base_url: str = "http://127.0.0.1:8000"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_sms_from: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_whatsapp_from: str = ""
    twilio_whatsapp_content_sid: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=15.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "Lacre <nao-responda@lacre.local>"
    smtp_tls: Literal["none", "starttls", "tls"] = "none"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_concurrency: int = Field(default=8, ge=1, le=100)
    payment_url_template: str = (
        "https://pagamentos.example.com/checkout?account={account_id}&item={item}"
    )
    payment_webhook_secret: SecretStr = SecretStr("")
    platform_webhook_secret: SecretStr = SecretStr("")
    signing_url_template: str = "https://app.assin.com.br/assinar/{ref}"
    default_timezone: str = "America/Sao_Paulo"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    notification_cooldown_seconds: int = Field(default=60, ge=0)
    daily_paid_send_cap: int = Field(default=50, ge=0)
    allowed_phone_regions: str = "BR"
    scheduler_tick_seconds: float = Field(default=60.0, ge=1, le=3600)
    scheduler_messages_per_second: float = Field(default=25.0, gt=0, le=30)
    log_level: str = "INFO"

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        required = {
            "TELEGRAM_BOT_TOKEN": self.telegram_bot_token.get_secret_value(),
            "PAYMENT_WEBHOOK_SECRET": self.payment_webhook_secret.get_secret_value(),
        }
        if self.telegram_mode == "webhook":
            required["TELEGRAM_WEBHOOK_SECRET"] = self.telegram_webhook_secret.get_secret_value()
        if self.twilio_account_sid:
            required["TWILIO_AUTH_TOKEN"] = self.twilio_auth_token.get_secret_value()
        bad = [name for name, value in required.items() if value.lower() in _PLACEHOLDERS]
        if bad:
            raise ValueError("set real values for: " + ", ".join(bad))
        return self

    @property
    def allowed_regions(self) -> tuple[str, ...]:
        return tuple(r.strip().upper() for r in self.allowed_phone_regions.split(",") if r.strip())
