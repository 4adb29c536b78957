"""/docs and /redoc work anywhere: assets from the API itself, pinned and verified, checked in a
real headless browser with every third-party host unreachable."""

import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools import docs_assets
from devtools.template import REPO_ROOT
from tests.local_server import Server

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO_ROOT / ".local"
# As the environment's probe starts it: headless, no background traffic, a fresh profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Every host name but the local server's fails to resolve: no CDN, no font host.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=15000",
    "--window-size=1280,1600",
]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_pages_name_no_other_host(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]?([^'")\s>]+)""", page.text)
    assert urls, page.text
    assert [url for url in urls if "//" in url] == []
    assert "fonts.googleapis" not in page.text
    policy = page.headers["content-security-policy"]
    assert "http" not in policy
    assert "script-src 'self'" in policy


def test_swagger_ui_keeps_no_token_in_the_browser(client: TestClient) -> None:
    # Swagger UI stores "Authorize" credentials in localStorage only with persistAuthorization on.
    page = client.get("/docs").text
    assert '"persistAuthorization": false' in page
    assert "localStorage" not in page


def test_pages_follow_the_stage_prefix(app: Any) -> None:
    from tests.conftest import http_api_event, lambda_handler

    response = lambda_handler()(http_api_event("GET", "/docs", stage="dev"), None)
    assert response["statusCode"] == 200
    assert '"/dev/docs/assets/swagger-ui-bundle.js"' in response["body"]
    assert "'/dev/openapi.json'" in response["body"] or '"/dev/openapi.json"' in response["body"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
        ("swagger-ui.css", "text/css; charset=utf-8"),
        ("redoc.standalone.js", "text/javascript; charset=utf-8"),
        ("favicon-32x32.png", "image/png"),
    ],
)
def test_assets_are_served_from_the_pinned_packages(client: TestClient, name: str, content_type: str) -> None:
    response = client.get(f"/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    package = next(p for p in docs_assets.PACKAGES if name in p.files)
    with tarfile.open(docs_assets.verified_tarball(package), "r:gz") as archive:
        member = archive.extractfile(package.files[name])
        assert member is not None
        assert response.content == member.read()


@pytest.mark.parametrize("name", ["../main.py", "swagger-ui.LICENSE", "nope.js", "..%2Fmain.py"])
def test_nothing_else_is_served_as_an_asset(client: TestClient, name: str) -> None:
    assert client.get(f"/docs/assets/{name}").status_code == 404


def test_a_tampered_package_is_refused(tmp_path: Path) -> None:
    package = docs_assets.PACKAGES[1]
    shutil.copy(docs_assets.verified_tarball(package), tmp_path / package.tarball)
    with (tmp_path / package.tarball).open("ab") as tarball:
        tarball.write(b"\0")
    with pytest.raises(docs_assets.ChecksumMismatch, match=package.integrity[:20]):
        docs_assets.verified_tarball(package, cache=tmp_path)
    assert not (tmp_path / package.tarball).exists()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "this test needs Chromium to check /docs and /redoc in a real browser: "
            "`apt-get install chromium` (Debian/Ubuntu) or `brew install --cask chromium` (macOS); "
            ".ci/run installs it"
        )
    return found


def _browse(base: str, path: str, profile: Path, *extra: str) -> str:
    result = subprocess.run(  # noqa: S603 - the system's Chromium, fixed flags
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, f"{base}{path}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        # Swagger UI: every operation listed, and the Authorize button.
        (
            "/docs",
            [*(f'data-path="{p}"' for p in ("/health", "/items", "/items/{item_id}")), "btn authorize"],
        ),
        # ReDoc: the operations by name, the security scheme, and samples built from the schema's examples.
        (
            "/redoc",
            ["Create Item", "List Items", "Get Item", "Delete Item", "HTTPBearer", "Garden hose, 25 m"],
        ),
    ],
)
def test_docs_render_in_a_browser_without_third_parties(
    server: tuple[Server, str, int], tmp_path: Path, path: str, rendered: list[str]
) -> None:
    _, base, _ = server
    dom = _browse(base, path, tmp_path / "profile", "--dump-dom")
    for marker in rendered:
        assert marker in dom, f"{path} did not render {marker!r}"
    if path == "/docs":
        assert dom.count("opblock-summary-path") >= 7  # every operation of the document
    SCREENSHOTS.mkdir(exist_ok=True)
    screenshot = SCREENSHOTS / f"docs{path.replace('/', '-')}.png"
    _browse(base, path, tmp_path / "profile-2", f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
