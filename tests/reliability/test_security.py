"""Security defaults: safetensors only and no remote code, servers on 127.0.0.1, secrets never
logged, MLflow pinned past its known CVEs and refusing pickled models."""

from __future__ import annotations

import ast
import os
import re
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("data", "models", "training", "evaluation", "registry", "orchestration", "palitune")
CODE = [p for d in (*PACKAGES, "benchmarks") for p in sorted((REPO / d).rglob("*.py"))]
# Ways to unpickle (which runs whatever the file says) or to run a checkpoint's own code.
FORBIDDEN = {
    "torch.load": re.compile(r"\btorch\.load\("),
    "pickle": re.compile(r"\b(c?pickle|cloudpickle|dill|joblib)\.loads?\("),
    "numpy pickles": re.compile(r"allow_pickle\s*=\s*True"),
    "weights_only=False": re.compile(r"weights_only\s*=\s*False"),
    "remote code": re.compile(r"trust_remote_code\s*=\s*True"),
    "unsafe weights": re.compile(r"(use_safetensors|safe_serialization)\s*=\s*False"),
}
# The one documented exception: resuming reads the checkpoint that the same run wrote into
# its own output_dir (Accelerate unpickles the optimizer, scheduler and RNG states it saved
# there with torch.save). Nothing downloaded or shared is ever read this way; what leaves a
# run (adapter, merged model, registered version) is safetensors.
ALLOWED_PICKLE_LOADS = {("training/train.py", "accelerator.load_state(")}


def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_nothing_unpickles_or_runs_remote_code(name: str) -> None:
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in CODE
        for number, line in enumerate(_source(path).splitlines(), start=1)
        if FORBIDDEN[name].search(line)
    ]
    assert not hits, "\n".join(hits)


def test_the_only_pickle_load_is_resuming_a_runs_own_checkpoint() -> None:
    found = {
        (str(path.relative_to(REPO)), call) for path in CODE for call in re.findall(r"\w+\.load_state\(", _source(path))
    }
    assert found == ALLOWED_PICKLE_LOADS


def _from_pretrained_calls(path: Path) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(ast.parse(_source(path)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained"
    ]


def _keyword(call: ast.Call, name: str) -> object:
    return next((ast.literal_eval(k.value) for k in call.keywords if k.arg == name), None)


def test_loading_is_safetensors_only_without_remote_code() -> None:
    """Every from_pretrained in the packages says trust_remote_code=False, and a model's also
    use_safetensors=True. peft's PeftModel takes no such flags: the adapter folder is checked
    before (models.loading.check_model_folder refuses pickled weights)."""
    calls = [
        (path, call)
        for d in PACKAGES
        for path in sorted((REPO / d).rglob("*.py"))
        for call in _from_pretrained_calls(path)
    ]
    assert calls, "the loaders were found"
    for path, call in calls:
        owner = ast.unparse(call.func.value)  # type: ignore[attr-defined]
        where = f"{path.relative_to(REPO)}:{call.lineno}: {owner}.from_pretrained"
        if owner == "PeftModel":
            continue
        assert _keyword(call, "trust_remote_code") is False, where
        if "ForConditionalGeneration" in owner or owner.startswith("AutoModel"):
            assert _keyword(call, "use_safetensors") is True, where


def test_a_pickled_adapter_is_refused(tmp_path: Path) -> None:
    from models.loading import ModelFolderError, check_model_folder

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04")  # the pickle protocol header
    with pytest.raises(ModelFolderError, match="adapter_model.bin: pickled weights are refused"):
        check_model_folder(tmp_path)


SERVERS = re.compile(r"dagster dev|orchestration\.ui|mlflow (server|ui)")


def test_servers_bind_127_0_0_1_unless_configured() -> None:
    makefile = _source(REPO / "Makefile")
    recipes = [line for line in makefile.replace("\\\n", " ").splitlines() if line.startswith("\t")]
    servers = [line.strip() for line in recipes if SERVERS.search(line)]
    assert len(servers) >= 2, "make ui and make mlflow-ui"
    for line in servers:
        host = re.search(r"--host\s+(\S+)", line)
        assert host, f"no --host: the server binds wherever its default says: {line}"
        value = host.group(1)
        variable = re.fullmatch(r"\$\((\w+)\)", value)
        default = re.search(rf"^{variable.group(1)}\s*\??=\s*(\S+)", makefile, re.M) if variable else None
        assert (default.group(1) if default else value) == "127.0.0.1", line
    for path in CODE:  # what launches a server from Python passes a host that defaults to 127.0.0.1
        source = _source(path)
        if re.search(r'"dev"|"server"', source) and re.search(r"dagster|mlflow", source):
            assert '"--host"' in source and '"127.0.0.1"' in source, path
    everywhere = [*CODE, REPO / "Makefile", *sorted((REPO / "configs").rglob("*.yaml"))]
    assert not [p for p in everywhere if "0.0.0.0" in _source(p)], "nothing binds every interface by default"


def test_mlflow_is_pinned_past_its_known_cves() -> None:
    pin = re.search(r"^mlflow==(\S+)", _source(REPO / "constraints.txt"), re.M)
    assert pin, "constraints.txt pins mlflow"
    floor = (3, 11, 0)  # the newest fix constraints.txt lists (CVE-2026-4137)
    assert tuple(int(part) for part in pin.group(1).split(".")[:3]) >= floor
    assert version("mlflow") == pin.group(1), "the installed MLflow is the pinned one"


def test_mlflow_refuses_pickled_models(tmp_path: Path) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    import registry.tracking  # noqa: F401  (sets palitune's defaults)

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"

    class Pickled(mlflow.pyfunc.PythonModel):  # logged as an object: cloudpickled
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    mlflow.pyfunc.save_model(tmp_path / "pickled", python_model=Pickled(), pip_requirements=[])
    assert list((tmp_path / "pickled").glob("*.pkl")), "MLflow pickled it"
    with pytest.raises(MlflowException, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        mlflow.pyfunc.load_model(str(tmp_path / "pickled"))


SECRET = "hf_reliabilitySentinel0f9e8d7c6b5a"


@pytest.mark.slow
def test_secrets_never_reach_what_a_run_logs(
    tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real run trained and registered with secrets in its environment: they appear in no
    param, tag, metric, model version, artifact, file of the workspace or store, nor output."""
    import mlflow
    import pandas as pd

    from data.synthetic import SplitSizes, write_shapes_vqa
    from data.workspace import Workspace
    from registry.lineage import lineage_tags
    from registry.models import register_adapter
    from registry.tracking import client_for, ensure_experiment
    from training.config import load_config
    from training.train import train

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, SECRET)
    ws = Workspace(tmp_path / "ws")
    monkeypatch.setenv("PALITUNE_HOME", str(ws.root))
    dataset = write_shapes_vqa(ws.datasets / "vqa", sizes=SplitSizes(train=8, val=4, test=4))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = client_for(uri)
    ensure_experiment(client, "palitune", tmp_path / "artifacts")
    overrides = [f"base_model={tiny_base}", "dataset=dvc-data/vqa", "steps=2", "batch_size=4", "log_every=1"]
    result = train(
        load_config(REPO / "configs" / "tiny" / "64px_vqa_lora.yaml", [*overrides, "checkpoint_every=2"]),
        ws,
        tracking_uri=uri,
    )
    assert result.mlflow_run_id is not None
    tags = lineage_tags(dataset_hash=None, base_model=str(tiny_base), config_hash="c", task="vqa", repo=REPO)
    version = register_adapter(
        client,
        result.mlflow_run_id,
        result.adapter_dir,
        "palitune-vqa",
        tags,
        prompt="answer en how many shapes are there?",
    )

    run = client.get_run(result.mlflow_run_id)
    logged = [
        run.data.params,
        run.data.tags,
        sorted(run.data.metrics),
        client.get_model_version("palitune-vqa", version.version).tags,
    ]
    assert run.data.params and SECRET not in repr(logged)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "adapter_model.safetensors" for p in files) and any(p.suffix == ".db" for p in files)
    assert not [p for p in files if SECRET.encode() in p.read_bytes()], "workspace, checkpoints, store, artifacts"
    out, err = capfd.readouterr()
    assert SECRET not in out + err

    # The version is a model logged as code: nothing in it unpickles, and it loads and answers
    # with MLflow refusing pickled models.
    model_files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file() and "/models/" in str(p)]
    assert model_files and not [p for p in model_files if p.suffix in (".pkl", ".pickle", ".bin", ".pt")]
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"models:/palitune-vqa/{version.version}")
    image = next((dataset / "images").iterdir())
    assert (
        len(served.predict(pd.DataFrame({"image": [str(image)], "prompt": ["answer en how many shapes are there?"]})))
        == 1
    )
