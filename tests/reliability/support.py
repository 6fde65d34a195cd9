"""Pieces the reliability tests share: real adapters, a registry with a champion, snapshots."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

from models.loading import load_base
from registry.models import CHAMPION
from registry.tracking import client_for, open_run

NAME = "palitune-vqa"


def adapter_of(base: Path, out: Path) -> Path:
    """A complete LoRA adapter folder (safetensors weights, config, processor) for ``base``,
    as peft saves one; its weights are freshly initialised, not trained."""
    from peft import LoraConfig, get_peft_model

    model, processor = load_base(str(base))
    lora = LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj)")
    get_peft_model(model, lora).save_pretrained(out)
    processor.save_pretrained(out)
    return out


def registry_with_a_champion(uri: str, artifacts: Path, adapter: Path) -> str:
    """Register ``adapter`` as version 1 of ``palitune-vqa`` holding ``champion``; returns its run."""
    client = client_for(uri)
    run_id = open_run(client, "palitune", artifacts, run_name="v1", tags={})
    client.log_artifacts(run_id, str(adapter), artifact_path="adapter")
    client.create_registered_model(NAME)
    version = client.create_model_version(NAME, f"{client.get_run(run_id).info.artifact_uri}/adapter", run_id)
    client.set_registered_model_alias(NAME, CHAMPION, str(version.version))
    return run_id


def registry_state(uri: str) -> list[Any]:
    """Registered models with their aliases, and every version with its source."""
    client = client_for(uri)
    models = [
        (m.name, sorted(client.get_registered_model(m.name).aliases.items())) for m in client.search_registered_models()
    ]
    return [models, sorted((v.name, v.version, v.source) for v in client.search_model_versions())]


def file_hashes(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256), leaving out paths containing any of ``skip``."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part in str(path) for part in skip)
    }


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
