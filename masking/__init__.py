"""Masked numbers: proxy pool, sessions, voice and SMS routing."""
