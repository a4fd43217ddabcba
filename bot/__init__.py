"""The process shell of Lacre: settings, wiring, CLI, Telegram, HTTP, senders and sandbox."""
