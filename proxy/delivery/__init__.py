"""Delivery: claiming stored requests, sending them upstream, deciding what happens next."""
