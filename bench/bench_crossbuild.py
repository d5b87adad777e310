"""Benchmark 7, cross-compilation against emulation: the same Go program (the integration tests'
``tests/integration/contexts/cross-go``) built for linux/arm64, linux/arm/v7 and linux/arm/v6 two ways, on the
classic engine (``docker buildx build --no-cache --platform P``, one platform at a time):

- ``emulated``: ``FROM`` a Go image of the target platform, so the Go compiler itself runs under QEMU. Docker
  Hub's ``golang`` cannot be pulled here, so the benchmark first makes those images (not timed, kept in the
  registry for the next run): ``debian:bookworm`` + ``apt-get install golang-go`` (1.19, as the test
  environment's ``golang:1.19``) for arm64 and arm/v7. Debian has no ARMv6 port, so the arm/v6 build runs
  the arm/v7 compiler (under the same ``qemu-arm``) with ``GOARM=6``.
- ``cross``: ``FROM --platform=$BUILDPLATFORM golang:1.19`` (linux/amd64), with GOOS/GOARCH/GOARM from
  TARGETOS/TARGETARCH/TARGETVARIANT: the compiler runs natively and writes the target's code.

Both sides build the same source with ``CGO_ENABLED=0 go build -a``, from a context with a new random file
copied before the build step, with ``--no-cache``, and export the image into the builder without pushing
(``--output type=image,push=false``). ``-a`` compiles the standard library too, on both sides, as a cold
build with a current Go does: Debian's Go 1.19 ships the standard library precompiled for its own
architecture (Go 1.20 and later no longer ship it), which would let the emulated side skip it and time
only the link.
Each build prints ``go version -m`` of its binary, and the benchmark checks GOARCH and GOARM there. The
sides alternate per platform (emulated, cross, ...), one warm-up round discarded; medians per platform and
their ratio emulated / cross. No target: the figures tell users what each way costs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import benchlib as b

SOURCE = b.ROOT / "tests" / "integration" / "contexts" / "cross-go"
# platform -> the Debian architecture of the Go compiler that builds it under emulation
PLATFORMS = {"linux/arm64": "arm64", "linux/arm/v7": "armhf", "linux/arm/v6": "armhf"}
PREP_PLATFORM = {"arm64": "linux/arm64", "armhf": "linux/arm/v7"}
PREP = """FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends golang-go && rm -rf /var/lib/apt/lists/*
ENV GOPATH=/go PATH=/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
"""
BUILD_STEP = """WORKDIR /src
COPY nonce go.mod main.go ./
RUN CGO_ENABLED=0 {env}GOARM=${{TARGETVARIANT#v}} go build -a -o /out/hello . && go version -m /out/hello

FROM scratch
COPY --from=build /out/hello /hello
ENTRYPOINT ["/hello"]
"""
EMULATED = "ARG GOLANG_IMAGE\nFROM ${GOLANG_IMAGE} AS build\nARG TARGETVARIANT\n" + BUILD_STEP.format(env="")
CROSS = (
    "FROM --platform=$BUILDPLATFORM golang:1.19 AS build\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\n"
    + BUILD_STEP.format(env="GOOS=$TARGETOS GOARCH=$TARGETARCH ")
)


def golang_image(reg: str, arch: str) -> str:
    return f"{reg}/bench/golang-emulated:1.19-{arch}"


def prepare(reg: str) -> None:
    """The Go images of the target platforms, made once under QEMU and kept in the registry (not timed)."""
    for arch, platform in PREP_PLATFORM.items():
        image = golang_image(reg, arch)
        if b.run(["docker", "buildx", "imagetools", "inspect", image], check=False).returncode == 0:
            continue
        ctx = b.WORK / "crossbuild" / f"prep-{arch}"
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        (ctx / "Dockerfile").write_text(PREP)
        b.log(f"making {image} (apt-get install golang-go under QEMU for {platform}; not timed)")
        seconds = b.timed_seconds(
            b.run,
            [*("docker", "buildx", "build", "--builder", "default", "--platform", platform, "--pull"),
             *("--provenance", "false", "--sbom", "false", "--output", f"type=image,name={image},push=true", ctx)],
            timeout=3600,
        )  # fmt: skip
        b.log(f"{image} made in {seconds:.0f} s")


def fresh_context(dockerfile: str) -> Path:
    ctx = b.WORK / "crossbuild" / b.nonce()
    ctx.mkdir(parents=True)
    for name in ("go.mod", "main.go"):
        shutil.copy(SOURCE / name, ctx / name)
    (ctx / "nonce").write_text(ctx.name + "\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def side(reg: str, platform: str, emulated: bool):
    def build(i: int) -> float:
        ctx = fresh_context(EMULATED if emulated else CROSS)
        name = f"{reg}/bench/crossbuild:{ctx.name}"
        argv = [
            *("docker", "buildx", "build", "--builder", "default", "--progress", "plain", "--no-cache"),
            *("--platform", platform, "--provenance", "false", "--sbom", "false"),
            *("--output", f"type=image,name={name},push=false"),
        ]
        if emulated:
            argv += ["--build-arg", f"GOLANG_IMAGE={golang_image(reg, PLATFORMS[platform])}"]
        seconds, proc = b.timed(b.run, [*argv, ctx])
        arch = platform.split("/")[1]
        for setting in (f"GOARCH={arch}", *([f"GOARM={platform[-1]}"] if arch == "arm" else [])):
            if f"build\t{setting}" not in proc.stderr:
                raise RuntimeError(f"the {platform} build ({'emulated' if emulated else 'cross'}) lacks {setting}")
        shutil.rmtree(ctx)
        b.run(["docker", "image", "rm", name], check=False)  # the docker driver stored it in the engine
        return seconds

    return build


def main() -> None:
    reg = b.registry()
    repetitions = b.reps(3)
    prepare(reg)
    figures = {}
    rows = []
    for platform, compiler_arch in PLATFORMS.items():
        b.log(f"{platform}: {repetitions} rounds of emulated / cross, --no-cache")
        times = b.alternate({"emulated": side(reg, platform, True), "cross": side(reg, platform, False)}, repetitions)
        seconds = {name: b.summary(samples) for name, samples in times.items()}
        ratio = seconds["emulated"]["median"] / seconds["cross"]["median"]
        figures[platform] = {"seconds": seconds, "ratio_emulated_over_cross": round(ratio, 2)}
        rows.append(
            b.row(
                f"Go program for {platform}, --no-cache",
                f"cross-compiled on the build platform {seconds['cross']['median']:.1f} s",
                f"compiler under QEMU ({compiler_arch} golang-go) {seconds['emulated']['median']:.1f} s",
                f"{ratio:.1f}x (emulated / cross)",
                None,
            )
        )
    b.save(
        "crossbuild",
        {
            "title": "Go build per ARM platform: compiler under QEMU vs cross-compiled on the build platform",
            "target": "none (reported): what each way costs",
            "met": None,
            "repetitions": repetitions,
            "machine": b.machine(),
            "figures": figures,
            "rows": rows,
        },
    )
    line = ", ".join(
        f"{p} {f['seconds']['emulated']['median']:.1f} s / {f['seconds']['cross']['median']:.1f} s"
        f" = {f['ratio_emulated_over_cross']:.1f}x"
        for p, f in figures.items()
    )
    b.verdict("crossbuild", f"emulated / cross: {line}", None)


if __name__ == "__main__":
    main()
