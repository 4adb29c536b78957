"""Swagger UI and ReDoc, served by the app itself: pinned npm packages whose checksums are verified."""

# python -m devtools.docs_assets [<folder>]   # npm pack, check each SHA-512, extract what the pages load

# Standard library only: the function build runs this with the runtime's bare python3.13.
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".local" / "npm-packs"
SOURCE_TARGET = REPO_ROOT / "functions" / "api" / "app" / "docs_assets"


@dataclass(frozen=True)
class Package:
    """One npm package, pinned by version and by the registry's SHA-512 integrity."""

    name: str
    version: str
    integrity: str
    files: dict[str, str]  # name in the target folder -> path in the package tarball

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"


PACKAGES = (
    Package(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        {
            "swagger-ui-bundle.js": "package/swagger-ui-bundle.js",
            "swagger-ui.css": "package/swagger-ui.css",
            "favicon-32x32.png": "package/favicon-32x32.png",
            "swagger-ui.LICENSE": "package/LICENSE",
            "swagger-ui.NOTICE": "package/NOTICE",
            "swagger-ui-bundle.js.LICENSE.txt": "package/swagger-ui-bundle.js.LICENSE.txt",
        },
    ),
    Package(
        "redoc",
        "2.5.4",
        "sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==",
        {
            "redoc.standalone.js": "package/bundles/redoc.standalone.js",
            "redoc.LICENSE": "package/LICENSE",
            "redoc.standalone.js.LICENSE.txt": "package/bundles/redoc.standalone.js.LICENSE.txt",
        },
    ),
)


class ChecksumMismatch(Exception):
    """A package's tarball is not the one pinned."""


def integrity_of(path: Path) -> str:
    """The npm (Subresource Integrity) form of a file's SHA-512."""
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def verified_tarball(package: Package, cache: Path = CACHE) -> Path:
    """The package's tarball from the cache or `npm pack`, after checking its SHA-512."""
    path = cache / package.tarball
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError(
                "npm is not installed (Node.js's package manager fetches the docs assets)"
            )
        subprocess.run(  # noqa: S603 - npm with a pinned name@version
            [
                npm,
                "pack",
                f"{package.name}@{package.version}",
                "--silent",
                "--pack-destination",
                str(cache),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    found = integrity_of(path)
    if found != package.integrity:
        path.unlink()  # never reuse a bad download
        raise ChecksumMismatch(f"{package.tarball}: {found} is not the pinned {package.integrity}")
    return path


def install(target: Path, cache: Path = CACHE) -> list[Path]:
    """Write every docs asset into `target` (replacing what was there); the files written."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for package in PACKAGES:
        with tarfile.open(verified_tarball(package, cache), "r:gz") as archive:
            for name, member in package.files.items():
                source = archive.extractfile(member)
                if source is None:
                    raise FileNotFoundError(f"{package.tarball} has no {member}")
                (staging / name).write_bytes(source.read())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return sorted(target.iterdir())


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_TARGET
    try:
        written = install(target)
    except (ChecksumMismatch, FileNotFoundError, subprocess.CalledProcessError) as error:
        print(f"docs assets: {error}", file=sys.stderr)
        return 1
    print(f"docs assets: {len(written)} files in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
