"""The ``palitune`` command follows the conventions of a command line: ``--version``, help on
every argument, one exit-code scheme, a log that ``-q`` quiets, bad input refused in one line
before anything loads, and "did you mean" for a mistyped config key."""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

import pytest

from data.synthetic import SplitSizes, write_shapes_vqa
from palitune.cli import build_parser, main
from training.config import ConfigError, config_fields, load_config

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "configs" / "tiny" / "64px_vqa_lora.yaml"


def _subparsers(parser: argparse.ArgumentParser, path: str = "palitune") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _subparsers(child, f"{path} {name}")
    return found


def _one_line_error(err: str) -> None:
    assert err.startswith("palitune: error: ") and err.count("\n") == 1, err


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALITUNE_HOME", str(tmp_path / "ws"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path / "ws"


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"palitune {metadata.version('palitune')}\n"


def test_every_argument_of_every_command_has_help() -> None:
    parsers = _subparsers(build_parser())
    assert len(parsers) > 15  # the walk reaches the nested commands (data ingest, registry promote, ...)
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in parsers
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert not missing, missing


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("0  done", "1  anything else", "2  bad input", "3  kept out by a promotion gate"):
        assert line in out


def test_train_takes_every_config_field_as_training_does(capsys: pytest.CaptureFixture[str]) -> None:
    from training.config import config_from_args, config_overrides
    from training.train import build_parser as training_parser

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    missing = [name for name, _ in config_fields() if f"--{name} " not in out]
    assert not missing, missing
    train = dict(_subparsers(build_parser()))["palitune train"]
    ours = {flag for action in train._actions for flag in action.option_strings}
    theirs = {flag for action in training_parser()._actions for flag in action.option_strings}
    assert theirs <= ours, theirs - ours

    args = build_parser().parse_args(["train", "--config", str(SMALL), "--lora.rank", "4", "steps=3"])
    assert config_overrides(args) == ["lora.rank=4", "steps=3"]
    config = config_from_args(args)
    assert (config.lora.rank, config.steps) == (4, 3)


def test_a_config_typo_gets_the_closest_field(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("learnig_rate: 0.001\nlora:\n  rnak: 4\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "learnig_rate: Extra inputs are not permitted; did you mean 'learning_rate'?" in message
    assert "lora.rnak: Extra inputs are not permitted; did you mean 'lora.rank'?" in message
    with pytest.raises(ConfigError, match=r"lora_rank: .*did you mean 'lora\.rank'"):
        load_config(None, ["lora_rank=8"])
    with pytest.raises(ConfigError, match=r"zzz: .*\(the fields of lora: rank, alpha"):
        load_config(None, ["lora.zzz=8"])


def test_a_config_typo_exits_2_through_both_train_paths(
    tmp_path: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--config", str(SMALL), "--plan", "batchsize=4"]) == 2
    assert "did you mean 'batch_size'?" in capsys.readouterr().err
    assert main(["train", "--config", str(SMALL), "batchsize=4"]) == 2  # python -m training.train's path
    assert "did you mean 'batch_size'?" in capsys.readouterr().err
    assert not ws.exists() or not (ws / "runs").exists()


BAD_INPUTS = {
    "train: missing --config": ["train", "--config", "{tmp}/nope.yaml"],
    "data validate: missing folder": ["data", "validate", "{tmp}/nope"],
    "data version: missing folder": ["data", "version", "{tmp}/nope"],
    "data ingest: missing source": ["data", "ingest", "{tmp}/nope", "--out", "{tmp}/out"],
    "evaluate run: missing dataset": ["evaluate", "run", "--model", "tiny", "--dataset", "{tmp}/nope"],
    "evaluate score: missing predictions": ["evaluate", "score", "--task", "vqa", "--predictions", "{tmp}/p.jsonl"],
    "run: missing run config": ["run", "--task", "vqa", "--run-config", "{tmp}/nope.yaml"],
}


@pytest.mark.parametrize("argv", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_exits_2_in_one_line_before_anything_loads(
    argv: list[str], tmp_path: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    _one_line_error(err)
    assert "nope" in err or "p.jsonl" in err  # it names what is missing
    assert not (ws / "models").exists(), "no base model was built"


def test_an_unknown_model_exits_2_from_every_registry_command(
    tmp_path: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One store for the four commands: creating an MLflow store takes seconds."""
    for argv in (
        ["registry", "show", "palitune-nope"],
        ["registry", "promote", "palitune-nope"],
        ["registry", "rollback", "palitune-nope"],
        ["registry", "export", "palitune-nope@champion", "--merged", "--out", str(tmp_path / "x")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        _one_line_error(err)  # MLflow's "Creating initial MLflow database tables" is kept out too
        assert "registered model 'palitune-nope' does not exist (registered: none)" in err
    assert not (tmp_path / "x").exists()


USAGE_ERRORS = {
    "unknown command": ["fly"],
    "base build: seed not a number": ["base", "build", "--seed", "x"],
    "summary: unknown task": ["summary", "--task", "poetry"],
    "run: unknown task": ["run", "--task", "poetry"],
    "evaluate run: unknown split": ["evaluate", "run", "--model", "tiny", "--dataset", "d", "--split", "dev"],
    "-v with -q": ["-v", "-q", "summary"],
}


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_exit_2(argv: list[str], ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_an_invalid_dataset_exits_2_and_quiet_hides_the_summary(
    tmp_path: Path, ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_shapes_vqa(tmp_path / "vqa", sizes=SplitSizes(train=4, val=2, test=2))
    assert main(["data", "validate", str(dataset)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"{dataset}: 8 examples, valid\n"  # the log, on stderr
    assert main(["-q", "data", "validate", str(dataset)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["-v", "data", "validate", str(dataset)]) == 0
    assert capsys.readouterr().err.startswith(f"workspace {ws}, command -v data validate {dataset}\n")
    (dataset / "test.jsonl").write_text('{"image": "missing.png"}\n')
    assert main(["-q", "data", "validate", str(dataset)]) == 2
    assert "test.jsonl:1: " in capsys.readouterr().out  # the problems are the command's data: stdout


def test_promoting_the_champion_says_so_at_once(tmp_path: Path, ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evaluation.report import EvaluationReport, ScoredPrediction
    from registry.models import CHAMPION, register_adapter, version_by_alias
    from registry.promotion import run_promotion
    from registry.tracking import client_for, open_run

    def report(scores: list[float]) -> EvaluationReport:
        predictions = [ScoredPrediction(f"t{i}", "q", "p", ["a"], s, {}) for i, s in enumerate(scores)]
        return EvaluationReport("vqa", "test", "m", "d" * 32, {"vqa/test/vqa_accuracy": 0.5}, predictions)

    def never(version: object, scratch: Path) -> EvaluationReport:
        raise AssertionError("no champion: nothing is re-scored")

    client = client_for(f"sqlite:///{tmp_path}/mlflow.db")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"v1")
    run_id = open_run(client, "palitune", tmp_path / "artifacts", run_name="v1", tags={})
    v1 = register_adapter(client, run_id, adapter, "palitune-vqa", {"palitune.dataset_hash": "d" * 32}).version
    run_promotion(client, "palitune-vqa", v1, report([float(i % 2) for i in range(100)]), report([0.0] * 100), never)
    champion = version_by_alias(client, "palitune-vqa", CHAMPION)
    assert champion is not None and str(champion.version) == v1
    capsys.readouterr()

    # the dataset hash names no DVC version here: scoring would fail, so exit 0 proves nothing was scored
    assert main(["registry", "promote", "palitune-vqa", "--version", v1]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"palitune-vqa: v{v1} already is champion\n")
    assert "nothing to score" in captured.err
    assert main(["registry", "promote", "palitune-vqa", "--version", "99"]) == 2
    _one_line_error(capsys.readouterr().err)


def test_run_launches_the_whole_graph_of_one_task(
    ws: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # make exports one; unset, the workspace's is used
    assert main(["run", "--task", "chartqa", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    command = plan["command"]
    assert Path(command[0]).name == "dg" and Path(command[0]).is_file()
    assert command[1:6] == ["launch", "--assets", "*", "--partition", "chartqa"]
    assert Path(command[command.index("--config") + 1]).is_file()
    assert (Path(plan["cwd"]) / "pyproject.toml").is_file() and plan["dagster_home"] == str(ws / "dagster")
