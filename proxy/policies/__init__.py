"""Delivery policies: retry schedule, circuit breaking, outcome classification, pacing."""
