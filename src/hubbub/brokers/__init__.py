"""Broker implementations, side by side: `local` (one node) and `redis` (many)."""
