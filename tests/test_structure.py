"""The codebase's shape: layers that import only downwards, a second resource built from the same
parts, and a function build that refuses development-only code."""

import ast
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from app.blocking import run_blocking
from app.dependencies import CurrentOwner, get_dynamodb_client
from app.edge import PRIVATE_PREFIXES
from app.routes.owner_route import OwnerRoute
from app.routes.request_body import MAX_BODY_BYTES
from devtools.check_build import dev_only_problems
from devtools.template import REPO_ROOT
from tests.conftest import TABLE_NAME
from tests.faults import FaultInjector

APP = REPO_ROOT / "functions" / "api" / "app"
Auth = Callable[[str], dict[str, str]]

# Lowest first; a module may import its own layer or lower ones (app/__init__.py says the same).
LAYERS = {
    "app.settings": 1,
    "app.observability": 1,
    "app.blocking": 1,
    "app.store": 2,
    "app.limits": 2,
    "app.auth": 3,
    "app.sam_local": 3,
    "app.preconditions": 3,
    "app.dependencies": 4,
    "app.owner_reference": 4,
    "app.edge": 5,
    "app.routes": 5,
    "app.snapstart": 6,
    "app.main": 6,
}


def _layer(module: str) -> int:
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and app/__init__.py")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_lower_layers_never_import_upper_ones() -> None:
    upward = []
    for module, path in _modules():
        if module == "app":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("app.") and _layer(name) > _layer(module):
                    upward.append(f"{module} imports {name}")
    assert upward == []


def test_every_package_says_what_it_holds() -> None:
    for package in [APP, *(p for p in APP.iterdir() if (p / "__init__.py").is_file())]:
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
        assert docstring, f"{package.name}/__init__.py has no docstring"


# --- a second resource, built the way CONTRIBUTING.md describes ----------------


class NoteCreate(BaseModel):
    """Body of POST /notes."""

    model_config = ConfigDict(strict=True, extra="forbid")
    text: str = Field(min_length=1, max_length=100)


class NoteStore:
    """The throwaway resource's DynamoDB access: its own key prefix, the same client."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put(self, owner: str, text: str) -> None:
        self._client.put_item(
            TableName=self._table, Item={"pk": {"S": f"NOTE#{owner}"}, "sk": {"N": "1"}, "text": {"S": text}}
        )

    def get(self, owner: str) -> str | None:
        row = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": f"NOTE#{owner}"}, "sk": {"N": "1"}}, ConsistentRead=True
        ).get("Item")
        return row["text"]["S"] if row else None


async def note_store() -> NoteStore:
    return NoteStore(get_dynamodb_client(), TABLE_NAME)


def notes_router() -> APIRouter:
    router = APIRouter(prefix="/notes", tags=["notes"], route_class=OwnerRoute)
    store = Annotated[NoteStore, Depends(note_store)]

    @router.put("", status_code=204, operation_id="put_note")
    async def put_note(note: NoteCreate, owner: CurrentOwner, notes: store) -> None:
        """Keep the caller's note."""
        await run_blocking(notes.put, owner, note.text)

    @router.get("", operation_id="get_note")
    async def get_note(owner: CurrentOwner, notes: store) -> dict[str, str | None]:
        """The caller's note."""
        return {"text": await run_blocking(notes.get, owner)}

    return router


@pytest.fixture
def notes(local_auth: None, dynamodb: Any) -> Iterator[TestClient]:
    from app.main import create_app
    from devtools.local_app import local_token_verifier
    from tests.conftest import LOCAL_SECRET

    app = create_app(token_verifier=local_token_verifier(LOCAL_SECRET), extra_routers=[notes_router()])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_second_resource_gets_auth_isolation_limits_and_the_edge(
    notes: TestClient, auth: Auth, faults: FaultInjector
) -> None:
    assert notes.put("/notes", json={"text": "hi"}, headers=auth("alice")).status_code == 204
    assert notes.get("/notes", headers=auth("alice")).json() == {"text": "hi"}
    assert notes.get("/notes", headers=auth("bob")).json() == {"text": None}  # owner isolation
    # The owner dependency: 401 in the API's shape.
    refused = notes.get("/notes")
    assert (refused.status_code, refused.json()) == (401, {"detail": "Not authenticated"})
    # The error mapping: a 422 naming the field.
    invalid = notes.put("/notes", json={"text": ""}, headers=auth("alice"))
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "text"]
    # The edge (request id, security headers), the route class's body limit, 503 on throttling.
    assert notes.get("/notes", headers=auth("alice")).headers["x-request-id"]
    assert refused.headers["x-content-type-options"] == "nosniff"
    too_large = notes.put("/notes", content=b"x" * (MAX_BODY_BYTES + 1), headers=auth("alice"))
    assert too_large.status_code == 413
    faults.decide = lambda operation: "throttle" if operation == "GetItem" else None
    unavailable = notes.get("/notes", headers=auth("alice"))
    assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "1")
    # The document lists the new operations beside the items ones.
    paths = notes.get("/openapi.json").json()["paths"]
    assert {"/notes", "/items", "/items/{item_id}"} <= set(paths)
    # Cache-Control follows PRIVATE_PREFIXES, which a real resource extends (CONTRIBUTING.md):
    # the throwaway resource is not in it, the items are.
    assert "/notes" not in PRIVATE_PREFIXES
    assert "cache-control" not in notes.get("/notes", headers=auth("alice")).headers
    assert notes.get("/items", headers=auth("alice")).headers["cache-control"] == "no-store"


# --- the function build refuses development-only code -------------------------


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    shutil.copytree(APP, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_function_artifact_has_no_development_code(artifact: Path) -> None:
    assert dev_only_problems(artifact) == []


@pytest.mark.parametrize(
    ("path", "content", "problem"),
    [
        ("devtools/live.py", "", "development-only devtools/live.py"),
        ("app/local_auth.py", "", "development-only app/local_auth.py"),
        ("app/live.py", "", "development-only app/live.py"),
        (
            "app/extra.py",
            "from devtools.local_app import create_local_app\n",
            "imports development-only devtools",
        ),
        ("app/extra.py", "import jwt\n", "imports development-only jwt"),
        ("app/routes/extra.py", "import moto.server\n", "imports development-only moto"),
    ],
)
def test_development_code_in_the_artifact_is_named(
    artifact: Path, path: str, content: str, problem: str
) -> None:
    (artifact / path).parent.mkdir(parents=True, exist_ok=True)
    (artifact / path).write_text(content, encoding="utf-8")
    assert any(problem in found for found in dev_only_problems(artifact))


def test_docstrings_in_the_code_are_one_line() -> None:
    """The house style (CONTRIBUTING.md): what a thing is or does, in one line; why goes in comments."""
    long = []
    for folder in ("functions", "layers/shared", "devtools", "bench"):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            if "docs_assets" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    docstring = ast.get_docstring(node, clean=False)
                    if docstring and "\n" in docstring.strip():
                        long.append(f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', 1)}")
    assert long == []
