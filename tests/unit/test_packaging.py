"""`pip install .` (not editable) must ship every package and data file: setuptools only takes the listed
ones."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {package: ROOT / folder for package, folder in config.get("package-dir", {}).items()}
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "registry").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    on_disk |= {
        package + "".join("." + part for part in init.parent.relative_to(folder).parts)
        for package, folder in mapped.items()
        for init in folder.rglob("__init__.py")
    }
    assert on_disk == listed


def test_every_data_file_is_listed_in_pyproject() -> None:
    """A file the server reads at run time (e.g. the OpenAPI description) must be declared package data."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = config.get("package-data", {})
    unlisted = [
        path.relative_to(ROOT)
        for path in (ROOT / "registry").rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and not any(
            fnmatch(path.name, pattern)
            for pattern in data.get(".".join(path.parent.relative_to(ROOT).parts), [])
        )
    ]
    assert unlisted == []
