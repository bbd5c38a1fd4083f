"""TWS API gateway simulator: real ib_async / ibapi clients connect to it over loopback TCP."""

from __future__ import annotations

from watchdog.sim.book import Execution
from watchdog.sim.control import SimulatorError
from watchdog.sim.faults import Faults
from watchdog.sim.orders import FillConfig, Session
from watchdog.sim.scenario import Scenario, ScenarioError, load_scenario, run_scenario
from watchdog.sim.server import ReceivedFrame
from watchdog.sim.simulator import Simulator
from watchdog.sim.truth import SimOpenOrder, SimPosition
from watchdog.sim.universe import Instrument

__all__ = [
    "Execution",
    "Faults",
    "FillConfig",
    "Instrument",
    "ReceivedFrame",
    "Scenario",
    "ScenarioError",
    "Session",
    "SimOpenOrder",
    "SimPosition",
    "Simulator",
    "SimulatorError",
    "load_scenario",
    "run_scenario",
]
