# The two commands of the README: `make demo` runs the main job, `make test` runs the tests.
# Both install what they need first (scripts/setup.sh), so they work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
export MUJOCO_GL ?= egl
export HF_HUB_OFFLINE ?= 1

.PHONY: setup demo test lint format bench

setup:
	@bash scripts/setup.sh

demo: setup  # the full stack on the shipped defaults: a random SortCubes scene, the embedded brain
	$(BIN)/kinema run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -P -m pytest -q  # -P: the checkout root must not shadow Hugging Face `datasets`

bench: setup
	$(BIN)/python benchmarks/sim_speed.py
