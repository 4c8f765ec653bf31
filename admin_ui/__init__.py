"""Admin web UI (a client of the store and the admin API; built in a later issue)."""
