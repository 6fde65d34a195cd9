"""What a logged model carries so that it loads without palitune installed: the modules its
code imports (and nothing else of the project) and the pinned distributions they import."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

from registry.errors import RegistryError
from registry.models import PROJECT_PACKAGES, code_closure, pinned_requirements, stage_code


def test_the_closure_is_what_the_pyfunc_imports_and_is_closed() -> None:
    closure = code_closure()
    for needed in ("registry.serving", "models.loading", "models.tiny_base", "data.atomic", "registry"):
        assert needed in closure, f"{needed} is imported on the way to a prediction"
    assert {name.split(".")[0] for name in closure} <= PROJECT_PACKAGES
    assert not [n for n in closure if n.startswith(("training", "orchestration", "palitune"))]
    assert "registry.pyfunc_model" not in closure and "registry.promotion" not in closure
    assert all(path.is_file() and path.suffix == ".py" for path in closure.values())


def test_the_staged_code_imports_on_its_own_with_its_package_data(tmp_path: Path) -> None:
    staging = tmp_path / "code"
    tops = stage_code(staging)
    assert sorted(p.name for p in tops) == sorted({n.split(".")[0] for n in code_closure()})
    assert (staging / "data" / "mask_codec" / "embedded.safetensors").is_file(), "a package's data travels"
    # The staged folder first on the path, as MLflow puts the model's code/ folder: every
    # module the closure names is found there, none in the checkout (found, not run: running
    # them is the fresh-environment test's part).
    probe = (
        "import importlib.util, json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "names = json.loads(sys.argv[2])\n"
        "print(json.dumps({n: importlib.util.find_spec(n).origin for n in names}))\n"
    )
    names = json.dumps(sorted(code_closure()))
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(staging), names], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(Path(f).is_relative_to(staging) for f in files.values()), files


def test_requirements_pin_every_distribution_the_code_imports_at_its_installed_release() -> None:
    pins = dict(line.split("==") for line in pinned_requirements())
    assert pins["torch"] == "2.13.0", "the CPU wheel's release, without its +cpu label"
    for dist in ("mlflow", "transformers", "peft", "pillow", "safetensors", "numpy", "pandas", "tokenizers"):
        assert pins[dist] == Version(version(dist)).public, dist


def test_an_import_no_distribution_provides_is_refused_naming_the_file(tmp_path: Path) -> None:
    module = tmp_path / "odd.py"
    module.write_text("import json\nimport no_such_distribution_here.sub\n")
    with pytest.raises(RegistryError, match=r"odd\.py: import no_such_distribution_here: provided by no installed"):
        pinned_requirements({"odd": module})
