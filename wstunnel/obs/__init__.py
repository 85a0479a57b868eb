"""Observability: logs and metrics, through twisted.logger."""
