"""The pages' browser libraries are vendored as fetched (scripts/vendor-web-assets.sh): every file
has its recorded SHA-256, nothing unrecorded lies beside them, each package keeps its license, and
the pins in the script, the record and the pages agree."""

import hashlib
import re
from pathlib import Path

from devtools.settings import PROJECT_ROOT
from quacknet.airflow import opsview

VENDOR = PROJECT_ROOT / "quacknet" / "airflow" / "static" / "vendor"


def _sums() -> dict[str, str]:
    return {name: digest for digest, name in (line.split(None, 1) for line in (VENDOR / "SHA256SUMS").read_text().splitlines())}


def test_every_vendored_file_matches_its_recorded_checksum_and_none_is_unrecorded():
    sums = _sums()
    on_disk = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()} - {"SHA256SUMS", "PACKAGES"}
    assert set(sums) == on_disk
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def _packages() -> list[tuple[str, str, str]]:
    rows = [line.split() for line in (VENDOR / "PACKAGES").read_text().splitlines() if not line.startswith("#")]
    return [(name, version, integrity) for name, version, integrity, *_ in rows]


def test_each_package_is_pinned_with_its_registry_integrity_and_ships_its_license():
    script = (PROJECT_ROOT / "scripts" / "vendor-web-assets.sh").read_text()
    pins = re.findall(r'^  "([a-z-]+) (\d+\.\d+\.\d+) ', script, re.M)
    assert [(n, v) for n, v, _ in _packages()] == pins
    for name, version, integrity in _packages():
        assert integrity.startswith("sha512-") and (VENDOR / f"{name}-{version}" / "LICENSE").is_file()


def test_the_pages_load_only_vendored_files_that_exist():
    for path in opsview.VENDOR.values():
        assert (Path(opsview.STATIC) / path).is_file(), path
        assert path.split("/")[1] in {f"{n}-{v}" for n, v, _ in _packages()}
