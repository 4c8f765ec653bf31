"""A BPJS Kesehatan simulator (VClaim, Antrean, Aplicare, iCare) for Tenang's tests, demo
and benchmarks: signature checks, encrypted answers, realistic business rules, and
switchable outages. ``tenang simulate-bpjs`` runs it; tests use ``create_simulator_app``.
"""

from proxy.bpjs.simulator.app import create_simulator_app
from proxy.bpjs.simulator.settings import MODES, Mode, SettingsError, SimConfig
from proxy.bpjs.simulator.state import LogEntry, SimulatorState

__all__ = ["MODES", "LogEntry", "Mode", "SettingsError", "SimConfig", "SimulatorState",
           "create_simulator_app"]
