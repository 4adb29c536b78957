"""`make bench`: every row in one run on this machine; `--check` compares the ratios with the targets."""

# Artifacts are laid out as Lambda lays out a `sam build`: the layer's `python/` folder (Lambda's
# /opt/python) and the function folder (the task root) on the import path, with boto3 from a
# runtime folder standing in for the runtime's copy. They are built by the same Makefiles that
# `sam build` runs, for this machine's platform (the deployed layer is arm64), with python3.13.

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from devtools import dynamodb_local
from devtools.template import REPO_ROOT, create_table

BENCH_DIR = REPO_ROOT / ".bench"
RESULTS = REPO_ROOT / "bench" / "results.json"
TABLE = "items-bench"
COLD_RUNS = 20
# Boto3 as the Lambda runtime has it (precompiled); the version the dev environment pins.
RUNTIME_BOTO3 = "boto3==1.44.8"
TARGETS = {
    "cold_vs_baseline": 1.00,
    "cold_vs_floor": 1.02,
    "cold_vs_no_pyc": 0.6,
    "warm_get_vs_baseline": 1.5,
    "rss_vs_baseline": 1.25,
    "deployed_unzipped_mb": 60,
}


def run(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, capture_output=True, **kwargs)  # noqa: S603


def local_platform() -> str:
    return {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}[platform.machine()]


def build(python313: str) -> dict[str, Path]:
    """Layer (this machine's and Lambda's arm64), function, no-pyc copy, runtime boto3, baseline."""
    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    names = ("layer", "layer-arm64", "shared", "function", "runtime", "baseline", "floor")
    paths = {name: BENCH_DIR / name for name in names}
    for path in paths.values():
        path.mkdir(parents=True)
    make = ["make", "-s", f"PYTHON313={python313}"]
    run(
        *make,
        "-C",
        "layers/dependencies",
        "build-DependenciesLayer",
        f"ARTIFACTS_DIR={paths['layer']}",
        f"PLATFORM={local_platform()}",
        cwd=REPO_ROOT,
    )
    run(
        *make,
        "-C",
        "layers/dependencies",
        "build-DependenciesLayer",
        f"ARTIFACTS_DIR={paths['layer-arm64']}",
        cwd=REPO_ROOT,
    )
    run(*make, "-C", "layers/shared", "build-SharedLayer", f"ARTIFACTS_DIR={paths['shared']}", cwd=REPO_ROOT)
    run(
        *make, "-C", "functions/api", "build-ApiFunction", f"ARTIFACTS_DIR={paths['function']}", cwd=REPO_ROOT
    )
    run(
        python313,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--target",
        str(paths["runtime"]),
        RUNTIME_BOTO3,
    )
    run(
        python313,
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        str(paths["runtime"]),
    )
    for app in ("baseline", "floor"):
        shutil.copytree(REPO_ROOT / "bench" / app, paths[app] / app)
        run(python313, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(paths[app]))
    # What a default `sam build` ships: the same files without any bytecode.
    for name in ("layer", "shared", "function"):
        copy = BENCH_DIR / f"{name}-no-pyc"
        shutil.copytree(paths[name], copy, ignore=shutil.ignore_patterns("__pycache__"))
        paths[f"{name}-no-pyc"] = copy
    return paths


def tree_size(path: Path) -> tuple[float, float]:
    """Unzipped and zipped (deflate) size in MB."""
    buffer = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                unzipped += file.stat().st_size
                archive.write(file, file.relative_to(path))
    return unzipped / 1e6, buffer.tell() / 1e6


def seed(endpoint: str) -> None:
    os.environ.update(
        {
            "TABLE_NAME": TABLE,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    create_table(client, TABLE)
    create_table(client, f"{TABLE}-idempotency", logical_id="IdempotencyTable")
    from app.store.items import ItemStore
    from items_core.layout import LayoutReader
    from items_core.models import ItemCreate

    store = ItemStore(client, TABLE, LayoutReader(lambda: client, TABLE))
    store.create("bench", ItemCreate(name="Widget", price=Decimal("9.99"), tags=["tools"]))


def child_env(paths: list[Path], handler: str, endpoint: str) -> dict[str, str]:
    event = json.loads((REPO_ROOT / "tests/events/http-api-v2.json").read_text())
    event.pop("cookies", None)
    event["headers"] = {"content-type": "application/json"}
    event["rawQueryString"] = ""
    event["queryStringParameters"] = None
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"sub": "bench"}, "scopes": None}}
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(str(path) for path in paths),
        "PYTHONDONTWRITEBYTECODE": "1",  # Lambda's file system is read-only
        "BENCH_HANDLER": handler,
        "BENCH_EVENT": json.dumps(event),
        "TABLE_NAME": TABLE,
        "IDEMPOTENCY_TABLE_NAME": f"{TABLE}-idempotency",
        "DYNAMODB_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",  # Lambda's INIT phase, as Lambda sets it
        # The per-owner limits work as deployed (a lease per doubling), never reached by one busy owner.
        "OWNER_READS_PER_SECOND": "1000000",
        "OWNER_WRITE_UNITS_PER_SECOND": "1000000",
    }


def child(python313: str, mode: str, env: dict[str, str], *flags: str) -> Any:
    script = str(REPO_ROOT / "bench" / "child.py")
    # The app writes (and flushes) its log lines, part of the measured cost, to a
    # file: a pipe would add this process's wake-ups to read them, which is the
    # log transport's cost on a 2-core machine, not the app's. The result is the last line.
    with tempfile.TemporaryFile("w+", encoding="utf-8", dir=BENCH_DIR) as output:
        finished = subprocess.run(  # noqa: S603
            [python313, "-s", *flags, script, mode],
            check=False,
            text=True,
            stdout=output,
            stderr=subprocess.PIPE,
            env=env,
        )
        if finished.returncode:
            output.seek(0)
            raise RuntimeError(f"bench child {mode} failed:\n{finished.stderr}\n{output.read()[-3000:]}")
        output.seek(0)
        return json.loads(output.read().strip().splitlines()[-1])


def process_ms(python313: str) -> float:
    """The physical floor: a bare interpreter started and stopped (`python3.13 -c pass`), wall clock."""
    start = time.perf_counter()
    subprocess.run([python313, "-s", "-c", "pass"], check=True)  # noqa: S603
    return (time.perf_counter() - start) * 1000


def import_profile(python313: str, env: dict[str, str], top: int = 20) -> list[dict[str, Any]]:
    """Where a cold start's import time goes: `-X importtime` of one cold run, top modules by self time."""
    script = str(REPO_ROOT / "bench" / "child.py")
    result = subprocess.run(  # noqa: S603
        [python313, "-s", "-X", "importtime", script, "cold"],
        check=True,
        text=True,
        capture_output=True,
        env=env,
    )
    rows: list[tuple[float, float, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, self_us, cumulative_us, name = (
            part.strip() for part in line.replace("import time:", "|").split("|")
        )
        rows.append((int(self_us) / 1000, int(cumulative_us) / 1000, name))
    rows.sort(reverse=True)
    return [{"module": name, "self_ms": own, "cumulative_ms": total} for own, total, name in rows[:top]]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


@contextlib.contextmanager
def local_server(**settings: str) -> Iterator[str]:
    """The server `make run` starts, with these settings; its base URL."""
    port = 8765
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TABLE_", "DYNAMODB_"))}
    env["PYTHONPATH"] = "functions/api:functions/upgrade:layers/shared"  # as the Makefile's DEV_PATH
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "devtools.run", "--no-reload", "--port", str(port)],
        cwd=REPO_ROOT,
        env={**env, **settings},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def local_load(seconds: float, concurrency: int) -> dict[str, float]:
    """The server `make run` starts, under a bounded load of one owner (per-owner limits off)."""
    with local_server(OWNER_READS_PER_SECOND="0", OWNER_WRITE_UNITS_PER_SECOND="0") as base:
        return asyncio.run(_load(base, seconds, concurrency))


def noisy_neighbour(seconds: float) -> dict[str, Any]:
    """Bob's reads alone, then while alice floods reads and 20-tag writes (limits one server can reach)."""
    with local_server(
        OWNER_READS_PER_SECOND="10", OWNER_WRITE_UNITS_PER_SECOND="20", OWNER_ITEMS_STORED="20"
    ) as base:
        return asyncio.run(_neighbours(base, seconds))


async def _neighbours(base: str, seconds: float) -> dict[str, Any]:
    import httpx2 as httpx

    from devtools.dev_token import issue_local_token

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await _wait_for(client)
        bob = {"Authorization": f"Bearer {issue_local_token('bob')}"}
        alice = {"Authorization": f"Bearer {issue_local_token('alice')}"}
        path = (await client.post("/items", json={"name": "Lamp", "price": 1}, headers=bob)).headers[
            "location"
        ]
        heavy = {"name": "Hose", "price": 1, "tags": [f"t{n}" for n in range(20)], "description": "x" * 1500}

        async def bob_reads(until: float, latencies: list[float], errors: list[int]) -> None:
            while time.perf_counter() < until:
                start = time.perf_counter()
                status = (await client.get(path, headers=bob)).status_code
                latencies.append((time.perf_counter() - start) * 1000)
                if status != 200:
                    errors.append(status)
                await asyncio.sleep(0.2)  # a calm client: about 5 reads a second, within its limit

        async def alice_floods(until: float, statuses: list[int]) -> None:
            n = 0
            while time.perf_counter() < until:
                n += 1
                if n % 4 == 0:
                    request = client.post("/items", json=heavy, headers=alice)
                elif n % 4 == 1:
                    request = client.post("/items", json={"name": "Fill", "price": 1}, headers=alice)
                else:
                    request = client.get("/items", headers=alice)
                statuses.append((await request).status_code)

        phases: dict[str, Any] = {}
        for phase, flooders in (("calm", 0), ("flood", 6)):
            latencies: list[float] = []
            errors: list[int] = []
            flood: list[int] = []
            until = time.perf_counter() + seconds
            await asyncio.gather(
                bob_reads(until, latencies, errors), *(alice_floods(until, flood) for _ in range(flooders))
            )
            latencies.sort()
            phases[phase] = {
                "bob_requests": len(latencies),
                "bob_p50_ms": latencies[len(latencies) // 2],
                "bob_p99_ms": latencies[int(len(latencies) * 0.99)],
                "bob_errors": len(errors),
                "alice_requests": len(flood),
                "alice_429": flood.count(429),
                "alice_403_quota": flood.count(403),
            }
    return phases


async def _wait_for(client: Any) -> None:
    import httpx2 as httpx

    for _ in range(300):
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            await asyncio.sleep(0.1)


async def _load(base: str, seconds: float, concurrency: int) -> dict[str, float]:
    import httpx2 as httpx

    from devtools.dev_token import issue_local_token

    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        await _wait_for(client)
        headers = {"Authorization": f"Bearer {issue_local_token('load')}"}
        created = await client.post("/items", json={"name": "Widget", "price": 1}, headers=headers)
        path = created.headers["location"]
        deadline = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                url = path if n % 2 else "/items"
                response = await client.get(url, headers=headers)
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "errors": errors,
        "concurrency": concurrency,
        "seconds": seconds,
    }


def measure(python313: str) -> dict[str, Any]:
    paths = build(python313)
    server = dynamodb_local.start()
    endpoint = server.endpoint
    try:
        seed(endpoint)
        variants = {
            "project": child_env(
                [paths["function"], paths["layer"] / "python", paths["shared"] / "python", paths["runtime"]],
                "app.main.handler",
                endpoint,
            ),
            "project without .pyc": child_env(
                [
                    paths["function-no-pyc"],
                    paths["layer-no-pyc"] / "python",
                    paths["shared-no-pyc"] / "python",
                    paths["runtime"],
                ],
                "app.main.handler",
                endpoint,
            ),
            "baseline": child_env(
                [paths["baseline"], paths["layer"] / "python", paths["runtime"]],
                "baseline.main.handler",
                endpoint,
            ),
            "floor app": child_env(
                [paths["floor"], paths["layer"] / "python", paths["runtime"]], "floor.main.handler", endpoint
            ),
        }
        project = variants["project"]
        # The other placement of the DynamoDB client: created by the first request, not during INIT.
        variants["project, client on first request"] = {
            k: v for k, v in project.items() if k != "AWS_LAMBDA_INITIALIZATION_TYPE"
        }
        fastapi_mangum = {**variants["floor app"], "BENCH_IMPORTS": "fastapi,mangum"}
        cold: dict[str, list[float]] = {name: [] for name in variants}
        project_import: list[float] = []
        physical: dict[str, list[float]] = {"python3.13 -c pass (process)": [], "import fastapi, mangum": []}
        for _ in range(COLD_RUNS):  # interleaved, so drift on a shared machine hits every variant alike
            for name, env in variants.items():
                measured = child(python313, "cold", env)
                cold[name].append(measured["ms"])
                if name == "project":
                    project_import.append(measured["import_ms"])
            physical["python3.13 -c pass (process)"].append(process_ms(python313))
            physical["import fastapi, mangum"].append(child(python313, "imports", fastapi_mangum)["ms"])
        profile = import_profile(python313, project)
        warm = {name: child(python313, "warm", variants[name]) for name in ("project", "baseline")}
    finally:
        server.stop()
    load = local_load(seconds=10, concurrency=8)
    neighbours = noisy_neighbour(seconds=5)
    layer, shared, function = (tree_size(paths[name]) for name in ("layer-arm64", "shared", "function"))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "python": run(python313, "-c", "import sys; print(sys.version.split()[0])").stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "cold_ms": {name: summary(values) for name, values in cold.items()},
        "cold_parts_ms": {
            "project: import (INIT)": summary(project_import),
            "project: first GET": summary(
                [t - i for t, i in zip(cold["project"], project_import, strict=True)]
            ),
        },
        "floor_ms": {name: summary(values) for name, values in physical.items()},
        "import_profile": profile,
        "warm_us": {
            name: {case: summary(values) for case, values in rows.items() if case != "peak_rss_mb"}
            for name, rows in warm.items()
        },
        "peak_rss_mb": {name: rows["peak_rss_mb"][0] for name, rows in warm.items()},
        "size_mb": {
            "layer (arm64)": {"unzipped": layer[0], "zipped": layer[1]},
            "shared layer": {"unzipped": shared[0], "zipped": shared[1]},
            "function": {"unzipped": function[0], "zipped": function[1]},
        },
        "local_load": load,
        "noisy_neighbour": neighbours,
    }
    results["ratios"] = ratios(results)
    return results


def ratios(results: dict[str, Any]) -> dict[str, float]:
    cold = results["cold_ms"]
    warm = results["warm_us"]
    size = results["size_mb"]
    return {
        "cold_vs_baseline": cold["project"]["median"] / cold["baseline"]["median"],
        "cold_vs_floor": cold["project"]["median"] / cold["floor app"]["median"],
        "cold_vs_no_pyc": cold["project"]["median"] / cold["project without .pyc"]["median"],
        "warm_get_vs_baseline": warm["project"]["GET /items/{id}"]["median"]
        / warm["baseline"]["GET /items/{id}"]["median"],
        "rss_vs_baseline": results["peak_rss_mb"]["project"] / results["peak_rss_mb"]["baseline"],
        "deployed_unzipped_mb": sum(row["unzipped"] for row in size.values()),
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {results['machine']}; Python {results['python']}; {results['date']}",
        "",
        "| row | median | min | max |",
        "|---|---|---|---|",
    ]
    for name, row in results["cold_ms"].items():
        lines.append(
            f"| cold: {name} (ms, n={row['n']}) | {row['median']:.0f} | {row['min']:.0f} | {row['max']:.0f} |"
        )
    for name, row in results.get("cold_parts_ms", {}).items():
        lines.append(
            f"| cold part: {name} (ms) | {row['median']:.0f} | {row['min']:.0f} | {row['max']:.0f} |"
        )
    for name, row in results.get("floor_ms", {}).items():
        lines.append(f"| floor: {name} (ms) | {row['median']:.0f} | {row['min']:.0f} | {row['max']:.0f} |")
    for name, cases in results["warm_us"].items():
        for case, row in cases.items():
            label = f"warm: {name} {case} (µs/request, {row['n']} batches)"
            lines.append(f"| {label} | {row['median']:.0f} | {row['min']:.0f} | {row['max']:.0f} |")
    lines += ["", "| size | unzipped MB | zipped MB |", "|---|---|---|"]
    for name, row in results["size_mb"].items():
        lines.append(f"| {name} | {row['unzipped']:.2f} | {row['zipped']:.2f} |")
    lines += ["", "| peak RSS after 1,000 warm requests | MB |", "|---|---|"]
    for name, value in results["peak_rss_mb"].items():
        lines.append(f"| {name} | {value:.1f} |")
    load = results["local_load"]
    lines += [
        "",
        f"Local load (`make run`'s server, {load['concurrency']} concurrent clients, "
        f"{load['seconds']:.0f} s): "
        f"{load['rps']:.0f} requests/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
        f"{load['errors']} errors in {load['requests']} requests.",
        "",
        "Noisy neighbour (`make run`'s server, each owner allowed 10 reads and 20 write units a second "
        "and 20 stored items; bob reads about 5 times a second, alone, then while alice floods reads, "
        "plain creates (up to her quota) and 20-tag writes from 6 clients):",
        "",
        "| phase | bob requests | bob p50 ms | bob p99 ms | bob errors | alice requests | alice 429 "
        "| alice 403 (quota) |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {phase} | {row['bob_requests']} | {row['bob_p50_ms']:.1f} | {row['bob_p99_ms']:.1f} | "
            f"{row['bob_errors']} | {row['alice_requests']} | {row['alice_429']} "
            f"| {row.get('alice_403_quota', 0)} |"
            for phase, row in results["noisy_neighbour"].items()
        ),
        "",
        "| target | limit | measured |",
        "|---|---|---|",
    ]
    for name, value in results["ratios"].items():
        lines.append(f"| {name} | ≤ {TARGETS[name]} | {value:.2f} |")
    if results.get("import_profile"):
        lines += ["", "| module (`-X importtime`, one cold run) | self ms | cumulative ms |", "|---|---|---|"]
        for row in results["import_profile"]:
            lines.append(f"| `{row['module']}` | {row['self_ms']:.1f} | {row['cumulative_ms']:.1f} |")
    return "\n".join(lines)


def check(results: dict[str, Any]) -> list[str]:
    missed = [
        f"{name}: {value:.2f} > {TARGETS[name]}"
        for name, value in results["ratios"].items()
        if value > TARGETS[name]
    ]
    if results["local_load"]["errors"]:
        missed.append(f"local load: {results['local_load']['errors']} errors")
    for phase, row in results["noisy_neighbour"].items():
        if row["bob_errors"]:
            missed.append(f"noisy neighbour ({phase}): {row['bob_errors']} of bob's requests failed")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python313", required=True, help="the Lambda runtime's interpreter")
    parser.add_argument("--check", action="store_true", help="compare bench/results.json with the targets")
    args = parser.parse_args(argv)
    if args.check:
        results = json.loads(RESULTS.read_text())
    else:
        results = measure(args.python313)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    missed = check(results)
    for line in missed:
        print(f"MISSED {line}", file=sys.stderr)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
