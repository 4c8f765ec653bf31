"""SIMRS-facing intake: who may send, what is stored, what the SIMRS is answered."""
