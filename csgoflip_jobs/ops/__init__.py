"""Operators' tools: the CLI, readiness checks, the local stack."""
