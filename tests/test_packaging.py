"""The folder layout must not shadow Hugging Face `datasets`, which lerobot imports."""

import importlib


def test_datasets_is_hugging_face_and_ours_lives_under_kinema():
    hugging_face = importlib.import_module("datasets")
    assert hasattr(hugging_face, "Dataset"), (
        f"`import datasets` found {hugging_face.__file__}; run Python with -P (see the Makefile) "
        "so the checkout's datasets/ folder does not shadow Hugging Face's"
    )
    ours = importlib.import_module("kinema.datasets")
    assert ours.__file__ != hugging_face.__file__
