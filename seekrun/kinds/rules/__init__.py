"""Data-quality rules: parse-time specs (spec.py) and run-time checks (checks.py)."""
