"""A plain ``pip install .`` (without ``-c constraints.txt``) must give a working Dagster:
the pins Dagster needs live in pyproject.toml too, and the licence file says what pyproject does."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from dagster import AssetSelection
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

# What pip picks without those pins (dvc's stable hydra-core/omegaconf, which pin antlr4 4.9:
# every Dagster selection string then fails), and the protobuf major Dagster does not support.
BROKEN = {"antlr4-python3-runtime": "4.9.3", "omegaconf": "2.3.0", "hydra-core": "1.3.2", "protobuf": "7.0.0"}


def _dependencies() -> dict[str, Requirement]:
    requirements = (Requirement(line) for line in PROJECT["dependencies"])
    return {canonicalize_name(r.name): r for r in requirements}


def _dagster_pins() -> list[Requirement]:
    """The pins of constraints.txt whose stated reason is Dagster: each block of pins follows
    the comment that says why."""
    pins, reason = [], ""
    for line in (REPO / "constraints.txt").read_text().splitlines():
        text = line.strip()
        if not text:
            reason = ""
        elif text.startswith("#"):
            reason += " " + text
        elif re.search(r"\bdagster\b", reason, re.IGNORECASE):
            pins.append(Requirement(text))
    return pins


def test_every_pin_dagster_needs_is_declared_in_pyproject() -> None:
    pins = _dagster_pins()
    assert {canonicalize_name(p.name) for p in pins} >= set(BROKEN), "constraints.txt no longer says why"
    declared = _dependencies()
    for pin in pins:
        name = canonicalize_name(pin.name)
        assert name in declared, f"pyproject.toml: {name} is pinned for Dagster in constraints.txt but not declared"
        spec = declared[name].specifier
        for pinned in (s.version for s in pin.specifier if s.operator == "=="):
            assert spec.contains(pinned, prereleases=True), f"pyproject.toml: {name}{spec} refuses {pinned}"
        assert not spec.contains(BROKEN[name], prereleases=True), f"pyproject.toml: {name}{spec} allows {BROKEN[name]}"


def test_the_installed_set_satisfies_pyproject_and_parses_selections() -> None:
    """What the clash breaks, checked on the installed set: antlr4 within pyproject's range and
    a Dagster selection string that parses (under antlr4 4.9 it raises TypeError)."""
    antlr = _dependencies()["antlr4-python3-runtime"]
    assert antlr.specifier.contains(version("antlr4-python3-runtime"), prereleases=True)
    selection = AssetSelection.from_string('key:"champion" or key:"raw_dataset"+')
    assert selection is not None


def test_no_unused_dagster_mlflow_and_the_licence_matches() -> None:
    extras = [r for group in PROJECT["optional-dependencies"].values() for r in group]
    named = [Requirement(r).name for r in [*PROJECT["dependencies"], *extras]]
    assert "dagster-mlflow" not in named and "dagster-mlflow" not in (REPO / "constraints.txt").read_text()
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    head = (REPO / "LICENSE").read_text().split("TERMS AND CONDITIONS")[0]
    assert "Apache License" in head and "Version 2.0, January 2004" in head
