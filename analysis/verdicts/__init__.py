"""Verdicts: what the findings mean, per app (DESIGN.md data flow: findings -> verdicts -> reports).

Pure functions from the findings/flows/contacts tables (and optional profile, plan, claims) to tidy
DataFrames that reports render: mode comparison (baseline vs each mode, "not tested" when a mode has
no traffic), linkability, coverage, canary recall, claims. Every table here carries `app`.
"""
