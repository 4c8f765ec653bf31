"""Tenang: a durable store-and-forward proxy between a SIMRS and BPJS Kesehatan."""

__version__ = "0.1.0"
