"""The Telegram bot: handlers, keyboards, texts and callback data over python-telegram-bot."""
