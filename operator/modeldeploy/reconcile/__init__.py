"""Deciding what to write: desired children versus what the API server holds (pure)."""
