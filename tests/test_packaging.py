"""The folder layout must not shadow Hugging Face `datasets`, which lerobot imports."""

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path


def test_datasets_is_hugging_face_and_ours_lives_under_kinema():
    hugging_face = importlib.import_module("datasets")
    assert hasattr(hugging_face, "Dataset"), (
        f"`import datasets` found {hugging_face.__file__}; run Python with -P (see the Makefile) "
        "so the checkout's datasets/ folder does not shadow Hugging Face's"
    )
    ours = importlib.import_module("kinema.datasets")
    assert ours.__file__ != hugging_face.__file__


def test_the_wheel_ships_the_default_brain_and_policy(tmp_path):
    """`kinema run`'s defaults (the brain, a policy per long-horizon task) load from package
    data, so a non-editable install has them."""
    from kinema.policies.dit.shipped import SHIPPED_POLICIES

    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", str(tmp_path), str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("kinema-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, files in {
        **{
            f"kinema/policies/dit/shipped_policies/{folder.name}": (
                "config.json",
                "model.safetensors",
                "stats.json",
            )
            for folder in SHIPPED_POLICIES.values()
        },
        "kinema/policies/brain/embedded_weights": ("config.json", "model.safetensors"),
    }.items():
        assert {f"{folder}/{name}" for name in files} <= names, f"{wheel.name} lacks {folder}"
