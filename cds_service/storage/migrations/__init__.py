"""Alembic migrations of the card log and feedback (and every later table). See schema.py."""
