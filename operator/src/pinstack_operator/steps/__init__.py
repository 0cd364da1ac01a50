"""Idempotent ensure_* steps: each reads the actual state, writes only what differs, and returns
the list of changes it made (empty: nothing was written)."""
