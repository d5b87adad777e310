"""Join the benchmarks' parts (``results/parts/<name>.json``) into ``results/results.json`` and the Markdown
table ``results/results.md``. ``results/parts/status.tsv`` (written by run.sh: name, exit status, last line)
names the benchmarks that did not finish, so the table says what is missing and why.
"""

from __future__ import annotations

import json
import time

import benchlib as b

ORDER = ["release", "index", "cold_build", "downtime", "bytes", "scaling", "crossbuild", "release_playbook"]
TITLES = {
    "release": "1. Unchanged release",
    "index": "2. Index creation",
    "cold_build": "3. Cold multi-platform build",
    "downtime": "4. Device update downtime",
    "bytes": "5. Bytes per update",
    "scaling": "6. Fleet scaling",
    "crossbuild": "7. Cross-compiling vs emulated compiler",
    "release_playbook": "8. Release playbook, unchanged inputs",
}


def read_status() -> dict:
    out = {}
    path = b.PARTS / "status.tsv"
    if path.exists():
        for line in path.read_text().splitlines():
            name, code, last = [*line.split("\t", 2), "", ""][:3]
            out[name] = {"exit_status": int(code or 0), "last_line": last}
    return out


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main() -> None:
    status = read_status()
    parts = {}
    for name in ORDER:
        path = b.PARTS / f"{name}.json"
        if path.exists():
            parts[name] = json.loads(path.read_text())
    results = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": b.machine(),
        "benchmarks": {},
    }
    lines = [
        "# Benchmark results",
        "",
        f"Generated {results['generated']} by `bench/run.sh` on `{results['machine']['host']}` "
        f"({results['machine']['cpus']} cores, shared with other work: expect noise). Medians of alternating "
        "runs; every figure and every run is in `results.json`.",
        "",
        "| benchmark | case | fleet.multiarch | reference | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ORDER:
        part = parts.get(name)
        st = status.get(name, {})
        if part is None:
            reason = st.get("last_line") or "not run"
            results["benchmarks"][name] = {"ran": False, "reason": reason, **st}
            lines.append(f"| {TITLES[name]} | not run | | | | {cell(reason)} |")
            continue
        results["benchmarks"][name] = {**part, **st}
        for i, r in enumerate(part.get("rows", [])):
            verdict = {True: "met", False: "**missed**", None: "-"}[r["met"]]
            first = TITLES[name] if i == 0 else ""
            lines.append(
                f"| {first} | {cell(r['case'])} | {cell(r['collection'])} | {cell(r['reference'])} "
                f"| {cell(r['ratio'])} | {verdict} |"
            )
    lines += ["", "Targets:", ""]
    for name in ORDER:
        if name in parts:
            part = parts[name]
            state = {True: "met", False: "MISSED", None: "no target"}[part.get("met")]
            lines.append(f"- {TITLES[name]}: {part.get('target')} ({state}, {part.get('repetitions')} runs per side)")
    if (b.RESULTS / "scaling.png").exists():
        lines += ["", "![fleet scaling](scaling.png)"]
    b.RESULTS.mkdir(parents=True, exist_ok=True)
    (b.RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (b.RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {b.RESULTS / 'results.json'} and {b.RESULTS / 'results.md'}")


if __name__ == "__main__":
    main()
