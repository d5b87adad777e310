"""container_rollout against the real engine, the local registry and QEMU emulation.

The application is tests/integration/apps/rollout-app (busybox httpd with a HEALTHCHECK), built here as
three tags of 127.0.0.1:5000/fleet-test/rollout-app: v1 and v2 healthy, v3 failing its HEALTHCHECK.
The tests of one deployment build on each other, in file order: v1, v2, v3 (rolled back), rollback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from .helpers import run, run_module

MODULE = "fleet.multiarch.container_rollout"
APP_DIR = Path(__file__).parent / "apps" / "rollout-app"
APP = "fleet-test-rollout-app"
ARM = "fleet-test-rollout-arm"
MISSING = "fleet-test-rollout-missing"
BENCH = "fleet-test-rollout-bench"
SHARED_DIR = Path(__file__).parent / "apps" / "shared-port-app"
SHARED = "fleet-test-rollout-shared"
SHARED_FAIL = "fleet-test-rollout-shared-fail"
FOREIGN = "fleet-test-rollout-foreign"
RELEASED = "fleet-test-rollout-released"
NAMES = [
    n + s
    for n in (APP, ARM, MISSING, BENCH, SHARED, SHARED_FAIL, FOREIGN, RELEASED)
    for s in ("", "-previous", "-next", "-older")
]
# Repositories of these tests alone (named after the branch that added them, so parallel runs never share them).
FOREIGN_REPO = "wt-deploy-rollout/foreign"
RELEASED_REPO = "wt-deploy-rollout/released"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remove_containers() -> None:
    existing = run(["docker", "ps", "-a", "--format", "{{.Names}}"]).stdout.split()
    doomed = [n for n in NAMES if n in existing]
    if doomed:
        run(["docker", "rm", "-f", *doomed])


def inspect(name: str) -> dict | None:
    proc = run(["docker", "inspect", "--type", "container", name], check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def instant(text: str) -> str:
    """An engine time stamp (RFC 3339, nanoseconds with trailing zeros dropped) that compares as text."""
    stamp = text.rstrip("Z")
    seconds, fraction = stamp.split(".", 1) if "." in stamp else (stamp, "")
    return f"{seconds}.{fraction:0<9}"


def get(port: int, path: str = "/") -> str:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).text.strip()


@pytest.fixture(scope="module")
def app(testenv, tmp_path_factory) -> dict:
    """Build and push v1, v2 and v3 of the test application; remove the test containers afterwards."""
    registry = testenv["registry"]
    repo = f"{registry}/fleet-test/rollout-app"
    for version, healthy in (("v1", "yes"), ("v2", "yes"), ("v3", "no")):
        run(
            [
                "docker", "buildx", "build", "--builder", "default", "--platform", "linux/amd64",
                "--build-arg", f"BASE={registry}/library/busybox:latest",
                "--build-arg", f"VERSION={version}", "--build-arg", f"HEALTHY={healthy}",
                "--output", f"type=image,name={repo}:{version},push=true",
                str(APP_DIR),
            ]
        )  # fmt: skip
    remove_containers()
    tmp = tmp_path_factory.mktemp("rollout")
    info = {"repo": repo, "registry": registry, "port": free_port(), "history": str(tmp / "history.json"), "tmp": tmp}
    yield info
    remove_containers()


def app_args(app: dict, version: str, **extra) -> dict:
    args = {
        "name": APP,
        "image": f"{app['repo']}:{version}",
        "ports": [f"127.0.0.1:{app['port']}:8080"],
        "env": {"GREETING": "hello"},
        "labels": {"org.example.team": "fleet"},
        "memory": "64m",
        "log_driver": "json-file",
        "log_options": {"max-size": "1m"},
        "history_file": app["history"],
        "health_timeout": 30,
    }
    args.update(extra)
    return args


def test_deploy_check_apply_check(app):
    # Check mode: it would deploy, and nothing is created.
    result = run_module(MODULE, app_args(app, "v1"), check_mode=True, diff=True)
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is True
    assert result["action"] == "create"
    assert result["platform"] == "linux/amd64"  # the device's own platform, as device_facts decides it
    assert result["image"].startswith(app["repo"] + "@sha256:")
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["digest"] == result["digest_after"]
    assert inspect(APP) is None

    applied = run_module(MODULE, app_args(app, "v1"))
    assert applied["failed"] is False, applied.get("msg")
    assert applied["changed"] is True
    assert applied["health"]["status"] == "healthy"
    assert applied["health"]["method"] == "healthcheck"
    assert applied["digest_after"] == result["digest_after"]
    attrs = inspect(APP)
    assert attrs["State"]["Running"] is True
    assert attrs["Config"]["Image"] == applied["image"]  # a digest, never the tag
    labels = attrs["Config"]["Labels"]
    assert labels["io.fleet-multiarch.digest"] == applied["digest_after"]
    assert labels["io.fleet-multiarch.reference"] == f"{app['repo']}:v1"
    assert labels["org.example.team"] == "fleet"
    assert "GREETING=hello" in attrs["Config"]["Env"]
    assert attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    assert attrs["HostConfig"]["LogConfig"]["Config"]["max-size"] == "1m"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert get(app["port"]) == "v1"
    started = attrs["State"]["StartedAt"]

    again = run_module(MODULE, app_args(app, "v1"))
    assert again["failed"] is False, again.get("msg")
    assert again["changed"] is False
    assert again["action"] == "none"
    assert inspect(APP)["State"]["StartedAt"] == started  # not restarted

    checked = run_module(MODULE, app_args(app, "v1"), check_mode=True)
    assert checked["changed"] is False

    # A configuration change alone is a deployment too (same digest, other env).
    changed_env = run_module(MODULE, app_args(app, "v1", env={"GREETING": "bye"}), check_mode=True, diff=True)
    assert changed_env["changed"] is True
    assert changed_env["diff"]["before"]["digest"] == changed_env["diff"]["after"]["digest"]
    assert changed_env["diff"]["before"]["config_hash"] != changed_env["diff"]["after"]["config_hash"]
    app["v1_digest"] = applied["digest_after"]


def test_deploy_v2_shows_digest_diff_and_keeps_previous(app):
    result = run_module(MODULE, app_args(app, "v2"), diff=True)
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is True
    assert result["action"] == "replace"
    assert result["diff"]["before"]["digest"] == app["v1_digest"]
    assert result["diff"]["after"]["digest"] == result["digest_after"] != app["v1_digest"]
    assert result["digest_before"] == app["v1_digest"]
    assert get(app["port"]) == "v2"
    assert result["previous"] == {"name": f"{APP}-previous", "digest": app["v1_digest"]}
    previous = inspect(f"{APP}-previous")
    assert previous["State"]["Running"] is False
    assert previous["HostConfig"]["RestartPolicy"]["Name"] == "no"  # a reboot must not start it
    assert inspect(f"{APP}-next") is None
    history = json.loads(Path(app["history"]).read_text())["deployments"]
    assert [(r["action"], r["result"]) for r in history] == [("create", "ok"), ("replace", "ok")]
    assert history[-1]["previous_digest"] == app["v1_digest"]
    again = run_module(MODULE, app_args(app, "v2"))
    assert again["changed"] is False
    app["v2_digest"] = result["digest_after"]
    app["v2_id"] = inspect(APP)["Id"]


def test_unhealthy_v3_is_rolled_back(app):
    result = run_module(MODULE, app_args(app, "v3"))
    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert result["health"]["status"] == "unhealthy"
    assert "HEALTHCHECK" in result["health"]["detail"]
    assert "404" in result["msg"]  # the log tail of the failed container
    assert "rollout-app v3 starting" in result["msg"]
    assert any("rollout-app v3" in line for line in result["logs"])
    assert "Rolled back" in result["msg"]
    assert result["digest_after"] == app["v2_digest"]
    # v2 serves again, the very same container; v3 is gone.
    assert get(app["port"]) == "v2"
    assert inspect(APP)["Id"] == app["v2_id"]
    assert inspect(APP)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert inspect(f"{APP}-next") is None
    # v1 stays kept for a rollback on demand.
    assert inspect(f"{APP}-previous")["Config"]["Labels"]["io.fleet-multiarch.digest"] == app["v1_digest"]
    assert inspect(f"{APP}-older") is None
    history = json.loads(Path(app["history"]).read_text())["deployments"]
    assert history[-1]["result"] == "rolled_back"
    assert history[-1]["reference"].endswith(":v3")


def test_failing_http_probe_times_out_and_rolls_back(app):
    result = run_module(
        MODULE,
        app_args(app, "v1", health={"http": {"url": f"http://127.0.0.1:{app['port']}/missing"}}, health_timeout=3),
    )
    assert result["failed"] is True
    assert result["health"]["status"] == "timeout"
    assert result["health"]["method"] == "http"
    assert "HTTP 404" in result["health"]["detail"]
    assert result["rolled_back"] is True
    assert get(app["port"]) == "v2"
    assert inspect(APP)["Id"] == app["v2_id"]


def test_state_rolled_back(app):
    args = {"name": APP, "state": "rolled_back", "history_file": app["history"]}
    checked = run_module(MODULE, args, check_mode=True, diff=True)
    assert checked["failed"] is False, checked.get("msg")
    assert checked["changed"] is True
    assert checked["diff"]["before"]["digest"] == app["v2_digest"]
    assert checked["diff"]["after"]["digest"] == app["v1_digest"]
    assert get(app["port"]) == "v2"

    result = run_module(MODULE, args)
    assert result["failed"] is False, result.get("msg")
    assert result["changed"] is True
    assert result["rolled_back"] is True
    assert result["digest_after"] == app["v1_digest"]
    assert result["health"]["status"] == "healthy"
    assert get(app["port"]) == "v1"
    attrs = inspect(APP)
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"  # restored from the label
    assert inspect(f"{APP}-previous")["Config"]["Labels"]["io.fleet-multiarch.digest"] == app["v2_digest"]

    again = run_module(MODULE, args)
    assert again["failed"] is False, again.get("msg")
    assert again["changed"] is False
    assert get(app["port"]) == "v1"

    # Deploying v2 again is a normal deployment.
    forward = run_module(MODULE, app_args(app, "v2"))
    assert forward["changed"] is True
    assert get(app["port"]) == "v2"


def test_rolled_back_without_previous_fails_clearly(app):
    result = run_module(
        MODULE, {"name": "fleet-test-rollout-none", "state": "rolled_back", "history_file": app["history"]}
    )
    assert result["failed"] is True
    assert "no previous deployment of fleet-test-rollout-none" in result["msg"]


def test_platform_variant_runs_under_emulation(app):
    args = {
        "name": ARM,
        "image": f"{app['registry']}/library/busybox:latest",
        "platform": "linux/arm/v7",
        # httpd started directly: busybox's shell re-executes its applets through /proc/self/exe, which loses
        # argv[0] under QEMU registered without the P (preserve-argv0) flag.
        "command": ["httpd", "-f", "-p", "8080"],
        "init": True,
        "running_seconds": 1,
        "history_file": str(app["tmp"] / "arm.json"),
    }
    result = run_module(MODULE, args)
    assert result["failed"] is False, result.get("msg")
    assert result["platform"] == "linux/arm/v7"
    assert result["platform_match"] == "linux/arm/v7"
    assert result["health"]["method"] == "running"
    assert run(["docker", "exec", ARM, "uname", "-m"]).stdout.strip() == "armv7l"
    image = run(["docker", "image", "inspect", result["image"], "--format", "{{.Architecture}}/{{.Variant}}"])
    assert image.stdout.strip() == "arm/v7"
    again = run_module(MODULE, args)
    assert again["changed"] is False
    # Another platform of the same index; the command probe runs inside the container, under emulation too.
    probe = {"command": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/etc/hostname"]}
    arm64 = run_module(MODULE, {**args, "platform": "aarch64", "health": probe})
    assert arm64["failed"] is False, arm64.get("msg")
    assert arm64["platform_match"] == "linux/arm64"
    assert arm64["health"]["method"] == "command"
    assert arm64["health"]["status"] == "healthy"
    assert run(["docker", "exec", ARM, "uname", "-m"]).stdout.strip() == "aarch64"


def test_index_without_the_platform_is_a_clear_error(app):
    result = run_module(
        MODULE,
        {
            "name": MISSING,
            "image": f"{app['registry']}/library/debian:bookworm",
            "platform": "linux/arm/v6",
            "history_file": str(app["tmp"] / "missing.json"),
        },
    )
    assert result["failed"] is True
    assert "has no image for linux/arm/v6" in result["msg"]
    assert "linux/amd64, linux/arm64, linux/arm/v7" in result["msg"]
    assert inspect(MISSING) is None


@pytest.fixture(scope="module")
def foreign(testenv, tmp_path_factory) -> str:
    """An index for linux/amd64 and linux/mips64le, which this host neither runs nor emulates.

    FROM scratch and COPY only (no RUN, so no emulator is needed), built by the second engine, whose image store
    holds multi-platform images; its command is a file that is no program of any platform (exec format error).
    """
    emulators = Path("/proc/sys/fs/binfmt_misc")
    if any((emulators / name).exists() for name in ("qemu-mips64el", "qemu-mips64")):
        pytest.fail("this host has a mips64 emulator registered, so it can run linux/mips64le; this test needs one"
                    " it cannot run", pytrace=False)  # fmt: skip
    context = tmp_path_factory.mktemp("foreign")
    (context / "Dockerfile").write_text('FROM scratch\nCOPY app /app\nCMD ["/app"]\n')
    (context / "app").write_text("not a program of any platform\n")
    (context / "app").chmod(0o755)
    ref = f"{testenv['registry']}/{FOREIGN_REPO}:1"
    env = dict(os.environ, DOCKER_HOST=testenv["engines"]["containerd"]["docker_host"])
    run(
        [
            "docker", "buildx", "build", "--builder", "default", "--platform", "linux/amd64,linux/mips64le",
            "--provenance=false", "--output", f"type=image,name={ref},push=true", str(context),
        ],
        env=env,
    )  # fmt: skip
    stale = engine_images(ref.rsplit(":", 1)[0])  # what an earlier run may have pulled into engine 1
    if stale:
        run(["docker", "image", "rm", "--force", *stale])
    return ref


def engine_images(repository: str) -> list:
    """What engine 1 holds of ``repository`` (repository@digest lines)."""
    out = run(["docker", "image", "ls", "--digests", "--format", "{{.Repository}}@{{.Digest}}", repository]).stdout
    return out.split()


def test_a_platform_the_device_cannot_run_is_refused_before_anything(app, foreign):
    """Issue 26: linux/mips64le on this amd64 host without its emulator pulled, stopped the running version and
    crash-looped on exec format error until the rollback. It is refused before anything, in check mode too."""
    running = run_module(MODULE, {**app_args(app, "v1"), "name": FOREIGN, "ports": []})
    assert running["failed"] is False, running.get("msg")
    before = inspect(FOREIGN)
    assert before["State"]["Running"] is True
    args = {**app_args(app, "v1"), "name": FOREIGN, "ports": [], "image": foreign, "platform": "linux/mips64le"}
    for check_mode in (True, False):
        t0 = time.monotonic()
        result = run_module(MODULE, args, check_mode=check_mode)
        seconds = time.monotonic() - t0
        assert result["failed"] is True
        assert result["changed"] is False
        assert result["msg"].startswith(
            "this device cannot run linux/mips64le: it runs linux/amd64, linux/386 natively"
        )
        assert "linux/arm64" in result["msg"]  # emulated here (test environment)
        assert "Drop the forced platform (the device's own is linux/amd64)" in result["msg"]
        assert "fleet.multiarch.binfmt (platforms: [linux/mips64le])" in result["msg"]
        assert result["digest_before"] == result["digest_after"] == running["digest_after"]
        assert seconds < 20, f"the refusal took {seconds:.1f} s"  # an ansible run, without pull, stop or health
        print(f"refused in {seconds:.1f} s (check mode {check_mode}), the ansible process included")
    after = inspect(FOREIGN)
    assert after["Id"] == before["Id"]
    assert after["State"]["Running"] is True
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert engine_images(foreign.rsplit(":", 1)[0]) == []  # nothing of the index was pulled
    # The same index for a platform the device runs: deployed (the refusal is about the platform, not the index).
    amd64 = run_module(MODULE, {**args, "platform": "linux/amd64"}, check_mode=True)
    assert amd64["failed"] is False, amd64.get("msg")
    assert amd64["changed"] is True


def retag(source: str, target: str) -> None:
    """Point ``target`` at what ``source`` holds, in the registry."""
    run(["docker", "buildx", "imagetools", "create", "--tag", target, source])


def test_the_device_refuses_a_digest_the_release_does_not_expect(app):
    """Issue 21 item 6: the release expects digest A for linux/amd64; once its tag is re-pointed to B the device
    refuses, changing nothing; the expected digest deploys."""
    current = f"{app['registry']}/{RELEASED_REPO}:current"
    retag(f"{app['repo']}:v1", current)
    args = {**app_args(app, "v1"), "name": RELEASED, "ports": [], "image": current}
    released = run_module(MODULE, args, check_mode=True)
    assert released["failed"] is False, released.get("msg")
    expected = {"linux/amd64": released["digest_after"]}
    deployed = run_module(MODULE, {**args, "expected_digests": expected})
    assert deployed["failed"] is False, deployed.get("msg")
    assert deployed["changed"] is True
    assert deployed["digest_after"] == expected["linux/amd64"]
    before = inspect(RELEASED)

    retag(f"{app['repo']}:v2", current)  # the tag moves after the release
    for check_mode in (True, False):
        result = run_module(MODULE, {**args, "expected_digests": expected}, check_mode=check_mode)
        assert result["failed"] is True
        assert result["changed"] is False
        assert result["msg"].startswith(f"{current} holds sha256:")
        assert f"for linux/amd64, but the release expects {expected['linux/amd64']}" in result["msg"]
        assert "The tag was re-pointed since the release. Nothing was pulled or stopped" in result["msg"]
        assert "roll out the release by its digest" in result["msg"]
        assert result["digest_after"] == expected["linux/amd64"]
    after = inspect(RELEASED)
    assert (after["Id"], after["State"]["StartedAt"], after["State"]["Running"]) == (
        before["Id"],
        before["State"]["StartedAt"],
        True,
    )
    # Without the release's expectation the tag's new digest deploys, as before.
    moved = run_module(MODULE, args, check_mode=True)
    assert moved["changed"] is True
    assert moved["digest_after"] != expected["linux/amd64"]


def _watch(port: int, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        now = time.monotonic()
        try:
            ok = requests.get(f"http://127.0.0.1:{port}/", timeout=0.2).status_code == 200
        except requests.exceptions.RequestException:
            ok = False
        samples.append((now, ok))
        time.sleep(0.005)


def longest_outage(samples: list) -> float:
    """Seconds between the last good answer before a failure and the first good answer after it."""
    worst, last_ok, failing = 0.0, None, False
    for when, ok in samples:
        if ok:
            if failing and last_ok is not None:
                worst = max(worst, when - last_ok)
            last_ok, failing = when, False
        else:
            failing = True
    return worst


def measure(port: int, action) -> float:
    stop, samples = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(port, stop, samples), daemon=True)
    watcher.start()
    time.sleep(0.3)
    action()
    done = time.monotonic()
    deadline = done + 15
    while time.monotonic() < deadline and not any(ok for when, ok in samples[-3:] if when > done):
        time.sleep(0.01)
    time.sleep(0.1)
    stop.set()
    watcher.join()
    assert any(ok for when, ok in samples if when > done), "the application does not answer after the swap"
    return longest_outage(samples)


def naive_update(name: str, image: str, *options: str) -> None:
    """The reference update, as a user runs it: docker pull && docker rm -f && docker run."""
    run(["docker", "pull", "-q", image])
    run(["docker", "rm", "-f", name])
    run(["docker", "run", "-d", "--name", name, *options, image])


def test_swap_downtime(app, capsys):
    port = free_port()
    base = {
        "name": BENCH,
        "ports": [f"127.0.0.1:{port}:8080"],
        "history_file": str(app["tmp"] / "bench.json"),
        "health": {"http": {"url": f"http://127.0.0.1:{port}/health"}},
        "health_interval": 0.05,
    }
    first = run_module(MODULE, {**base, "image": f"{app['repo']}:v1"})
    assert first["failed"] is False, first.get("msg")
    results = {}

    def swap():
        results["module"] = run_module(MODULE, {**base, "image": f"{app['repo']}:v2"})

    module_outage = measure(port, swap)
    assert results["module"]["failed"] is False, results["module"].get("msg")
    assert results["module"]["health"]["method"] == "http"
    assert get(port) == "v2"

    # The reference: docker pull && docker rm -f && docker run, the image already present as for the module.
    naive_outage = measure(port, lambda: naive_update(BENCH, f"{app['repo']}:v1", "-p", f"127.0.0.1:{port}:8080"))
    assert get(port) == "v1"
    with capsys.disabled():
        print(
            f"\ncontainer_rollout swap: longest outage {module_outage:.3f} s"
            f" (module swap_seconds {results['module']['swap_seconds']:.3f},"
            f" total {results['module']['seconds']:.3f} s);"
            f" docker pull && rm -f && run: {naive_outage:.3f} s"
        )
    assert module_outage < 5.0


# ---- update_order start-first: the shared-port application (apps/shared-port-app: a static server that opens its
# port with SO_REUSEPORT, on the host network), so that two versions listen at once.


@pytest.fixture(scope="module")
def shared_app(app, tmp_path_factory) -> dict:
    """v1 and v2 of the shared-port application, compiled here (cc -static) and pushed for linux/amd64."""
    ctx = tmp_path_factory.mktemp("shared-port-app")
    shutil.copy(SHARED_DIR / "Dockerfile", ctx / "Dockerfile")
    run(["cc", "-static", "-O2", "-Wall", "-Werror", "-o", str(ctx / "server"), str(SHARED_DIR / "server.c")])
    repo = f"{app['registry']}/fleet-test/shared-port-app"
    for version in ("v1", "v2"):
        run(
            [
                "docker", "buildx", "build", "--builder", "default", "--platform", "linux/amd64",
                "--build-arg", f"VERSION={version}",
                "--output", f"type=image,name={repo}:{version},push=true", str(ctx),
            ]
        )  # fmt: skip
    return {"repo": repo, "port": free_port(), "history": str(app["tmp"] / "shared.json")}


def shared_args(shared: dict, version: str, **extra) -> dict:
    args = {
        "name": SHARED,
        "image": f"{shared['repo']}:{version}",
        "network_mode": "host",
        "env": {"PORT": str(shared["port"])},
        "update_order": "start-first",
        "health": {"command": ["/server", "ready"]},  # inside the new container: a shared port would not tell
        "health_interval": 0.05,
        "stop_timeout": 5,
        "history_file": shared["history"],
    }
    args.update(extra)
    return args


def test_start_first_refuses_a_fixed_host_port(app):
    args = {**app_args(app, "v1", name=SHARED_FAIL), "update_order": "start-first"}
    for check_mode in (True, False):
        result = run_module(MODULE, args, check_mode=check_mode)
        assert result["failed"] is True
        assert "fixed host port(s) 127.0.0.1:" in result["msg"]
        assert "update_order stop-first" in result["msg"]
    assert inspect(SHARED_FAIL) is None
    assert inspect(f"{SHARED_FAIL}-next") is None


def test_start_first_swap_keeps_answering(shared_app):
    port = shared_app["port"]
    first = run_module(MODULE, shared_args(shared_app, "v1"))
    assert first["failed"] is False, first.get("msg")
    assert first["action"] == "create"
    assert get(port) == "v1"
    v1 = inspect(SHARED)
    results = {}

    def swap():
        results["swap"] = run_module(MODULE, shared_args(shared_app, "v2"), diff=True)

    swap_outage = measure(port, swap)
    result = results["swap"]
    assert result["failed"] is False, result.get("msg")
    assert result["action"] == "replace"
    assert result["health"]["method"] == "command"
    assert get(port) == "v2"
    new, old = inspect(SHARED), inspect(f"{SHARED}-previous")
    assert old["Id"] == v1["Id"]
    assert old["State"]["Running"] is False
    assert old["HostConfig"]["RestartPolicy"]["Name"] == "no"
    # The old container stopped only after the new one had started: both ran at once.
    assert instant(old["State"]["FinishedAt"]) > instant(new["State"]["StartedAt"])
    assert result["previous"] == {"name": f"{SHARED}-previous", "digest": first["digest_after"]}
    assert inspect(f"{SHARED}-next") is None
    again = run_module(MODULE, shared_args(shared_app, "v2"))
    assert again["changed"] is False
    shared_app.update(v1=v1, v1_digest=first["digest_after"], v2=new, swap_outage=swap_outage, swap=result)


def test_start_first_rollback_keeps_answering(shared_app, capsys):
    port, v1, new, results = shared_app["port"], shared_app["v1"], shared_app["v2"], {}
    rollback_args = {**shared_args(shared_app, "v1"), "state": "rolled_back"}
    del rollback_args["image"]

    def rollback():
        results["rollback"] = run_module(MODULE, rollback_args)

    rollback_outage = measure(port, rollback)
    back = results["rollback"]
    assert back["failed"] is False, back.get("msg")
    assert back["rolled_back"] is True
    assert back["digest_after"] == shared_app["v1_digest"]
    assert get(port) == "v1"
    assert inspect(SHARED)["Id"] == v1["Id"]
    assert inspect(SHARED)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    kept = inspect(f"{SHARED}-previous")
    assert kept["Id"] == new["Id"]
    assert instant(kept["State"]["FinishedAt"]) > instant(inspect(SHARED)["State"]["StartedAt"])
    assert inspect(f"{SHARED}-next") is None

    # The reference on the same application and network: the naive update has a gap.
    naive_outage = measure(
        port, lambda: naive_update(SHARED, f"{shared_app['repo']}:v2", "--network", "host", "-e", f"PORT={port}")
    )
    assert get(port) == "v2"
    with capsys.disabled():
        print(
            f"\nstart-first: longest outage {shared_app['swap_outage']:.3f} s in the swap (hand-over"
            f" {shared_app['swap']['swap_seconds']:.3f} s), {rollback_outage:.3f} s in the rollback;"
            f" docker pull && rm -f && run: {naive_outage:.3f} s"
        )
    assert shared_app["swap_outage"] < 0.25
    assert rollback_outage < 0.25
    assert naive_outage > max(shared_app["swap_outage"], rollback_outage)


def test_start_first_failure_never_stops_the_old_container(shared_app):
    port = free_port()
    args = {**shared_args(shared_app, "v1"), "name": SHARED_FAIL, "env": {"PORT": str(port)}}
    first = run_module(MODULE, args)
    assert first["failed"] is False, first.get("msg")
    before = inspect(SHARED_FAIL)

    # v2 itself is fine, but its health command cannot pass: it must be removed and v1 never stopped.
    result = run_module(
        MODULE,
        {**args, "image": f"{shared_app['repo']}:v2", "health": {"command": ["/nonexistent"]}, "health_timeout": 5},
    )
    assert result["failed"] is True
    assert result["rolled_back"] is False
    assert "was not stopped (update_order start-first) and still runs" in result["msg"]
    assert result["digest_after"] == first["digest_after"]
    after = inspect(SHARED_FAIL)
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]  # never stopped nor restarted
    assert after["State"]["Running"] is True
    assert inspect(f"{SHARED_FAIL}-next") is None
    assert inspect(f"{SHARED_FAIL}-previous") is None
    assert get(port) == "v1"
    history = json.loads(Path(shared_app["history"]).read_text())["deployments"]
    assert (history[-1]["container"], history[-1]["result"]) == (SHARED_FAIL, "failed")
