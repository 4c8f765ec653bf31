"""BPJS protocol knowledge: signing, response crypto, envelopes, endpoint presets."""
