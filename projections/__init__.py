"""Projections: tables folded from the event log (current state, relations, versions)."""
