# Two commands do all the set-up on a fresh clone: `make train` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install train test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned and installed FIRST: torch==2.13.0 resolves to the CPU wheel available here,
# while a looser requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml setup.py
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[ros,dev]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/robot-rl train

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check robot_rl sim controllers safety ros_nodes tests benchmarks
	$(BIN)/mypy robot_rl sim controllers safety ros_nodes

clean:
	rm -rf $(VENV) build *.egg-info
