"""Checks `sam build`'s artifacts: unchecked-hash python3.13 bytecode, only what Lambda reads, no dev code."""

# python -m devtools.check_build <python3.13 magic>   # every artifact (make build)
# python -m devtools.check_build --dev-only <folder>  # one function's artifact (functions/api/Makefile)

# Standard library only: the function build runs this with the runtime's bare python3.13.
import ast
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

BUILD = REPO_ROOT / ".aws-sam" / "build"
ARTIFACTS = {
    "DependenciesLayer": BUILD / "DependenciesLayer" / "python",
    "SharedLayer": BUILD / "SharedLayer" / "python",
    "ApiFunction": BUILD / "ApiFunction",
    "RealtimeFunction": BUILD / "RealtimeFunction",
    "NotifierFunction": BUILD / "NotifierFunction",
    "UpgradeFunction": BUILD / "UpgradeFunction",
}
# What each artifact must contain to import as Lambda imports it.
PACKAGES = {
    "SharedLayer": "items_core",
    "ApiFunction": "app",
    "RealtimeFunction": "realtime",
    "NotifierFunction": "realtime",
    "UpgradeFunction": "upgrade",
}
# Bytecode that zip timestamps cannot invalidate (PEP 552 flags: hash-based, source not checked).
UNCHECKED_HASH = 0b01
# What only `make run` needs: local dev tokens, /ws and its stream follower, the
# embedded DynamoDB. None of it may reach a deployed function, by path or by import.
DEV_ONLY_PACKAGES = frozenset({"devtools", "tests", "moto", "uvicorn", "jwt"})
DEV_ONLY_FILES = frozenset({"live.py", "local_auth.py", "local_app.py"})
# The one exception: under `sam local`, the function checks dev tokens itself, with PyJWT (from
# the layer), imported only then (app/sam_local.py; inert in a deployed stack, E9011).
SAM_LOCAL_IMPORTS = {"app/sam_local.py": frozenset({"jwt"})}
# Every top-level package of the dependencies layer, and who imports it at run time: a
# package nobody imports is cold-start download and disk for nothing, so a new one must
# be named here (or kept out of the layer).
LAYER_PACKAGES = {
    "annotated_doc": "FastAPI",
    "annotated_types": "pydantic",
    "anyio": "Starlette",
    "aws_lambda_powertools": "the realtime functions; the API's diagnostics (warnings, errors)",
    "fastapi": "the API",
    "idna": "anyio (host names)",
    "jmespath": "Powertools",
    "jwt": "the WebSocket function's $connect",
    "mangum": "the API's handler",
    "opentelemetry": "FastAPI (imported unconditionally, tracing switched off)",
    "pydantic": "models and settings",
    "pydantic_core": "pydantic",
    "starlette": "FastAPI",
    "typing_extensions": "pydantic, FastAPI",
    "typing_inspection": "pydantic",
}
# Dropped from the layer on purpose (layers/dependencies/Makefile says why).
LAYER_PRUNED = ("pydantic/v1",)


def _imported_packages(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def dev_only_problems(root: Path, name: str = "ApiFunction") -> list[str]:
    """Development-only modules in a function artifact: shipped files, or imports of them."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if relative.parts[0] in DEV_ONLY_PACKAGES or path.name in DEV_ONLY_FILES:
            found.append(f"{name}: development-only {relative} is in the artifact")
        elif path.suffix == ".py":
            allowed = SAM_LOCAL_IMPORTS.get(relative.as_posix(), frozenset())
            for package in sorted(_imported_packages(path) & DEV_ONLY_PACKAGES - allowed):
                found.append(f"{name}: {relative} imports development-only {package}")
    return found


def _docs_asset_problems(folder: Path) -> list[str]:
    names = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon-32x32.png")
    return [
        f"ApiFunction: the docs pages' {name} is missing from app/docs_assets"
        for name in names
        if not (folder / name).is_file()
    ]


def layer_package_problems(root: Path) -> list[str]:
    """Top-level packages of the dependencies layer that nobody named, or pruned ones that came back."""
    found = []
    for path in sorted(root.iterdir()):
        name = path.name.removesuffix(".py")
        if path.name.endswith(".dist-info") or name == "__pycache__":
            continue
        if name not in LAYER_PACKAGES:
            found.append(f"DependenciesLayer: unexpected top-level package {path.name}: name its importer")
    found += [
        f"DependenciesLayer: {pruned} should have been pruned"
        for pruned in LAYER_PRUNED
        if (root / pruned).exists()
    ]
    return found


def problems(python313_magic: bytes) -> list[str]:
    found = []
    for name, root in ARTIFACTS.items():
        if not root.is_dir():
            found.append(f"{name}: {root} is missing (run sam build)")
            continue
        sources = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
        for source in sources:
            cached = Path(
                importlib.util.cache_from_source(str(source)).replace(
                    sys.implementation.cache_tag, "cpython-313"
                )
            )
            if not cached.exists():
                found.append(f"{name}: no python3.13 bytecode for {source.relative_to(root)}")
                continue
            header = cached.read_bytes()[:8]
            if header[:4] != python313_magic or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
                found.append(f"{name}: {cached.relative_to(root)} is not unchecked-hash python3.13 bytecode")
        found += [
            f"{name}: foreign bytecode {p.relative_to(root)}"
            for p in root.rglob("*.pyc")
            if "cpython-313" not in p.name
        ]
        found += [f"{name}: install record {p.relative_to(root)}" for p in root.rglob("RECORD")]
        found += [f"{name}: test folder {p.relative_to(root)}" for p in root.rglob("tests") if p.is_dir()]
        if not sources:
            found.append(f"{name}: no Python sources")
    found += dev_only_problems(ARTIFACTS["ApiFunction"]) if ARTIFACTS["ApiFunction"].is_dir() else []
    for name, package in PACKAGES.items():
        if not (ARTIFACTS[name] / package / "__init__.py").is_file():
            found.append(f"{name}: the {package} package is missing")
    arm64 = list(ARTIFACTS["DependenciesLayer"].rglob("*cpython-313-aarch64-linux-gnu.so"))
    if not arm64:
        found.append("DependenciesLayer: no compiled extension for cpython-313 on aarch64 (pydantic_core)")
    found += _docs_asset_problems(ARTIFACTS["ApiFunction"] / "app" / "docs_assets")
    if ARTIFACTS["DependenciesLayer"].is_dir():
        found += layer_package_problems(ARTIFACTS["DependenciesLayer"])
    realtime = ARTIFACTS["RealtimeFunction"]
    if not list(realtime.glob("cryptography/hazmat/bindings/_rust*.so")):
        found.append("RealtimeFunction: no cryptography backend (PyJWT cannot verify RS256 tokens)")
    if (ARTIFACTS["NotifierFunction"] / "cryptography").exists():
        found.append("NotifierFunction: ships cryptography, which only RealtimeFunction needs")
    return found


def main() -> int:
    if sys.argv[1:2] == ["--dev-only"]:
        found = dev_only_problems(Path(sys.argv[2]))
    else:
        # The magic number of python3.13's bytecode, passed by the Makefile (this may run on 3.11).
        found = problems(bytes.fromhex(sys.argv[1]))
    for problem in found:
        print(problem, file=sys.stderr)
    print(f"build check: {len(found)} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
