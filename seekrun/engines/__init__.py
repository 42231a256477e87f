"""Engines execute one node each. DuckDB is the default (and, for now, only) engine."""
