"""Prove control of a phone number through Telegram's Passport phone verification."""

__version__ = "0.1.0"
