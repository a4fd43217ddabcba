"""Delivery: the outbox worker and the SMTP and Twilio senders every signature request uses."""
