"""Observability: metrics, the observer seam, notifications, logs and redaction."""
