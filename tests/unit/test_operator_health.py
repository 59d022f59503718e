"""/readyz's decision and the health flags."""

from __future__ import annotations

from types import SimpleNamespace

from igor_operator import health
from igor_operator.__main__ import build_parser, config_from_args


def test_ready_when_connected_and_leading_or_standing_by():
    state = health.Health()
    assert not state.ready() and "not connected" in state.describe()
    state.elector = SimpleNamespace(connected=True)
    assert not state.ready()  # no answer about the leader Lease yet
    for name, ready in [
        (health.STANDBY, True),
        (health.ACQUIRED, False),
        (health.LEADING, True),
        (health.STOPPING, False),
    ]:
        state.state = name
        assert state.ready() is ready, name
    state.state = health.LEADING
    state.elector.connected = False  # the last leader-election call failed
    assert not state.ready()


def test_health_flags():
    config = config_from_args(build_parser().parse_args([]))
    assert config.health_port is None and config.health_addr == "127.0.0.1"
    args = build_parser().parse_args(["--health-port", "8081", "--health-addr", "0.0.0.0"])
    config = config_from_args(args)
    assert (config.health_addr, config.health_port) == ("0.0.0.0", 8081)
