"""The local sandbox: fake outside services (Telegram Bot API, ...) that speak the real wire."""
