"""The HTTP app (Twilio status callbacks, health, and later the webhooks) and its server."""
