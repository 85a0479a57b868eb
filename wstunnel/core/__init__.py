"""Per-request decisions: routing, variables, headers, logs. No Twisted."""
