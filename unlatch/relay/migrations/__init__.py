"""Versioned SQL migrations of the relay's PostgreSQL schema (``NNN_name.sql``, in order)."""
