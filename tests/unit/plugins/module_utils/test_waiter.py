"""Unit tests for _waiter: one health observation, the wait loop, the probes and the Waiter."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.fleet.multiarch.plugins.module_utils import _waiter as wt

# The State of a container of the rollout test app (docker inspect, Engine 20.10), trimmed.
HEALTHY_STATE = {
    "Status": "running",
    "Running": True,
    "Restarting": False,
    "OOMKilled": False,
    "ExitCode": 0,
    "Error": "",
    "StartedAt": "2026-11-28T06:44:07.418869913Z",
    "Health": {
        "Status": "healthy",
        "FailingStreak": 0,
        "Log": [{"Start": "2026-11-28T06:44:08Z", "End": "2026-11-28T06:44:08Z", "ExitCode": 0, "Output": ""}],
    },
}
UNHEALTHY_STATE = {
    **HEALTHY_STATE,
    "Health": {
        "Status": "unhealthy",
        "FailingStreak": 2,
        "Log": [
            {"ExitCode": 1, "Output": "Connecting to 127.0.0.1:8080 (127.0.0.1:8080)\n"},
            {
                "ExitCode": 1,
                "Output": "Connecting to 127.0.0.1:8080 (127.0.0.1:8080)\n"
                "wget: server returned error: HTTP/1.1 404 Not Found\n",
            },
        ],
    },
}
EXITED_STATE = {"Status": "exited", "Running": False, "ExitCode": 2, "Error": "", "OOMKilled": False}
# A container whose command exits 3 after a second, under restart policy unless-stopped, between two runs
# (docker inspect, Engine 20.10.24): the engine marks it restarting at once.
CRASH_LOOP = {
    "State": {
        "Status": "restarting",
        "Running": True,
        "Paused": False,
        "Restarting": True,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 3,
        "Error": "",
        "StartedAt": "2026-12-08T01:26:18.010781485Z",
        "FinishedAt": "2026-12-08T01:26:19.141652493Z",
    },
    "HostConfig": {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}},
}
# A busybox httpd container (restart policy unless-stopped) on an emulated arm64 guest (Engine 20.10.24), polled
# while `systemctl restart docker` ran: the engine stopped it with itself (httpd ignores SIGTERM, so it was killed
# after 10 s) and left it so until it was back, when it started it again.
STOPPED_WITH_THE_ENGINE = {
    "State": {
        "Status": "exited",
        "Running": False,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": 0,
        "ExitCode": 137,
        "Error": "",
        "StartedAt": "2026-12-08T02:48:22.527792912Z",
        "FinishedAt": "2026-12-08T02:48:44.89237176Z",
    },
    "HostConfig": {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}},
}


@pytest.mark.parametrize(
    ("attrs", "state", "detail"),
    [
        ({}, "gone", "no longer exists"),
        ({"State": HEALTHY_STATE}, "running", "running"),
        ({"State": EXITED_STATE}, "exited", "exited (exit code 2)"),
        ({"State": {**EXITED_STATE, "OOMKilled": True}}, "exited", "out of memory"),
        ({"State": {**HEALTHY_STATE, "Restarting": True, "Status": "restarting"}}, "exited", "restarting"),
        ({"State": {**EXITED_STATE, "Error": "port is already allocated"}}, "exited", "already allocated"),
        (CRASH_LOOP, "exited", "the container is restarting (exit code 3)"),
        (
            STOPPED_WITH_THE_ENGINE,
            "waiting",
            "exited (exit code 137) and not restarting under restart policy unless-stopped",
        ),
        (
            {**STOPPED_WITH_THE_ENGINE, "HostConfig": {"RestartPolicy": {"Name": "no"}}},
            "exited",
            "exited (exit code 137)",
        ),
        (
            {**STOPPED_WITH_THE_ENGINE, "HostConfig": {"RestartPolicy": {"Name": "on-failure"}}},
            "exited",
            "exit code 137",
        ),
    ],
)
def test_container_state(attrs, state, detail):
    got_state, got_detail = wt.container_state(attrs)
    assert got_state == state
    assert detail in got_detail


def test_docker_health():
    assert wt.docker_health({"State": HEALTHY_STATE}) == ("healthy", "last check exited 0")
    status, detail = wt.docker_health({"State": UNHEALTHY_STATE})
    assert status == "unhealthy"
    assert detail == "last check exited 1: wget: server returned error: HTTP/1.1 404 Not Found"
    assert wt.docker_health({"State": EXITED_STATE}) == ("", "")
    assert wt.docker_health({}) == ("", "")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_healthy_polls_until_healthy():
    clock = FakeClock()
    answers = iter([("waiting", "starting"), ("waiting", "starting"), ("healthy", "ok")])
    result = wt.wait_healthy(lambda: next(answers), timeout=10, interval=0.5, clock=clock, sleep=clock.sleep)
    assert result == {"status": "healthy", "detail": "ok", "seconds": 1.0, "checks": 3}


def test_wait_healthy_stops_at_unhealthy():
    clock = FakeClock()
    result = wt.wait_healthy(lambda: ("unhealthy", "exited"), timeout=10, interval=1, clock=clock, sleep=clock.sleep)
    assert result["status"] == "unhealthy"
    assert result["checks"] == 1


def test_wait_healthy_times_out_within_the_bound():
    clock = FakeClock()
    result = wt.wait_healthy(lambda: ("waiting", "HTTP 503"), timeout=3, interval=1, clock=clock, sleep=clock.sleep)
    assert result["status"] == "timeout"
    assert result["detail"] == "not healthy within 3 s (HTTP 503)"
    assert result["seconds"] == 3.0
    assert result["checks"] == 4


def running():
    return "running", "running"


def no_healthcheck():
    return "", ""


def combine(container_check=running, probes=(), health_check=no_healthcheck, *, grace=2.0, now=100.0, started=100.0):
    return wt.combine_checks(
        container_check, list(probes), health_check, grace=grace, clock=lambda: now, started=started
    )


def test_combine_checks_exited_is_unhealthy_at_once():
    assert combine(container_check=lambda: ("exited", "exit code 2")) == ("unhealthy", "exit code 2")


def test_combine_checks_probes_decide():
    assert combine(probes=[lambda: ("pass", "a"), lambda: ("pass", "b")]) == ("healthy", "every probe passed")
    assert combine(probes=[lambda: ("pass", "a"), lambda: ("fail", "HTTP 503")]) == ("waiting", "HTTP 503")
    assert combine(probes=[lambda: ("error", "exited 127")]) == ("unhealthy", "exited 127")
    # The probes decide healthy even while the image's HEALTHCHECK is still starting...
    assert combine(probes=[lambda: ("pass", "a")], health_check=lambda: ("starting", ""))[0] == "healthy"
    # ...but an unhealthy HEALTHCHECK fails the deployment anyway.
    state, detail = combine(probes=[lambda: ("pass", "a")], health_check=lambda: ("unhealthy", "exit 1"))
    assert state == "unhealthy"
    assert "HEALTHCHECK reports unhealthy (exit 1)" in detail


def test_combine_checks_healthcheck_decides_without_probes():
    assert combine(health_check=lambda: ("healthy", ""))[0] == "healthy"
    assert combine(health_check=lambda: ("starting", ""))[0] == "waiting"


def test_combine_checks_running_for_the_grace_period():
    assert combine(now=101.0) == ("waiting", "running")
    assert combine(now=102.0)[0] == "healthy"


@pytest.mark.parametrize(
    ("health", "has_hc", "method"),
    [
        (None, False, "running"),
        (None, True, "healthcheck"),
        ({"http": {"url": "x"}, "tcp": None, "command": None}, True, "http"),
        ({"http": {"url": "x"}, "tcp": {"port": 1}, "command": ["true"]}, False, "http+tcp+command"),
    ],
)
def test_health_method(health, has_hc, method):
    assert wt.health_method(health, has_hc) == method


@pytest.mark.parametrize(("code", "state"), [(0, "pass"), (1, "fail"), (126, "error"), (127, "error")])
def test_command_probe_state(code, state):
    assert wt.command_probe_state(code) == state


@pytest.mark.parametrize(
    ("status", "expected", "ok"),
    [(200, [200], True), (204, [200], False), (204, [200, 204], True), (302, None, True), (500, None, False)],
)
def test_http_status_ok(status, expected, ok):
    assert wt.http_status_ok(status, expected) is ok


# --------------------------------------------------------------------------- the probes and the Waiter


def test_tcp_probe_passes_on_a_listening_port_and_fails_on_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        state, message = wt.tcp_probe({"port": port})()
        assert (state, message) == ("pass", f"TCP 127.0.0.1:{port} accepted")
    # the same port, now closed: the connection is refused
    state, message = wt.tcp_probe({"host": "127.0.0.1", "port": port})()
    assert state == "fail"
    assert message.startswith(f"TCP 127.0.0.1:{port}: ")


def waiter_params(**extra) -> dict:
    return {"health": None, "health_timeout": 3, "health_interval": 1, "running_seconds": 2, **extra}


def test_waiter_runs_the_command_probe_in_the_container(engine):
    container = engine.add("app", "sha256:" + "1" * 64, health="")
    clock = FakeClock()
    waiter = wt.Waiter(engine, waiter_params(health={"command": ["/check"]}), clock, clock.sleep)
    outcome = waiter.wait(container)
    assert outcome == {
        "status": "healthy",
        "detail": "every probe passed",
        "seconds": 0.0,
        "checks": 1,
        "method": "command",
    }
    assert ("exec", "app", ("/check",)) in engine.calls


def test_waiter_a_command_that_cannot_run_is_unhealthy_at_once(engine):
    container = engine.add("app", "sha256:" + "1" * 64, health="")
    engine.exec_code = 127
    clock = FakeClock()
    outcome = wt.Waiter(engine, waiter_params(health={"command": ["/nope"]}), clock, clock.sleep).wait(container)
    assert (outcome["status"], outcome["checks"]) == ("unhealthy", 1)
    assert outcome["detail"] == "['/nope'] exited 127"


def test_waiter_without_probe_or_healthcheck_waits_the_running_seconds(engine):
    container = engine.add("app", "sha256:" + "1" * 64, health="")
    clock = FakeClock()
    outcome = wt.Waiter(engine, waiter_params(), clock, clock.sleep).wait(container)
    assert (outcome["status"], outcome["method"], outcome["seconds"], outcome["checks"]) == (
        "healthy",
        "running",
        2.0,
        3,
    )


def test_waiter_times_out(engine):
    container = engine.add("app", "sha256:" + "1" * 64, health="starting")
    clock = FakeClock()
    outcome = wt.Waiter(engine, waiter_params(), clock, clock.sleep).wait(container)
    assert (outcome["status"], outcome["method"]) == ("timeout", "healthcheck")
    assert outcome["detail"].startswith("not healthy within 3 s (the image's HEALTHCHECK reports starting")


def test_start_and_wait_an_engine_error_is_unhealthy(engine):
    container = engine.add("app", "sha256:" + "1" * 64, running=False)

    def refuse(target):
        raise wt.EngineError("starting container app failed: port is already allocated")

    engine.start = refuse
    outcome = wt.Waiter(engine, waiter_params()).start_and_wait(container)
    assert outcome == {
        "status": "unhealthy",
        "detail": "starting container app failed: port is already allocated",
        "seconds": 0.0,
        "checks": 0,
        "method": "running",
    }


def test_waiter_rides_out_an_engine_restart(engine):
    """The engine goes down (the container stops with it, then the API does not answer), comes back and starts the
    container again: the wait goes on until the container is healthy, within the timeout."""
    container = engine.add("app", "sha256:" + "1" * 64, health="healthy")
    answers = iter(
        [STOPPED_WITH_THE_ENGINE, wt.EngineError("inspecting container app failed: connection refused"), None]
    )
    reload = engine.reload

    def restarting_engine(target):
        answer = next(answers, None)
        if isinstance(answer, Exception):
            raise answer
        return answer if answer is not None else reload(target)

    engine.reload = restarting_engine
    clock = FakeClock()
    outcome = wt.Waiter(engine, waiter_params(health_timeout=60), clock, clock.sleep).wait(container)
    assert (outcome["status"], outcome["checks"]) == ("healthy", 3), outcome


def test_waiter_an_engine_that_stays_away_times_out(engine):
    container = engine.add("app", "sha256:" + "1" * 64)

    def gone(target):
        raise wt.EngineError("inspecting container app failed: connection refused")

    engine.reload = gone
    clock = FakeClock()
    outcome = wt.Waiter(engine, waiter_params(), clock, clock.sleep).wait(container)
    assert outcome["status"] == "timeout"
    assert outcome["detail"] == (
        "not healthy within 3 s (the engine does not answer (inspecting container app failed: connection refused))"
    )
