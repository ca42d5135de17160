# Reelscope task runner. `make run` and `make test` install everything first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Compiled at install: the editable install leaves them as source, and where
# PYTHONDONTWRITEBYTECODE is set (python images set it) nothing else compiles them. The
# worker's workflow sandbox imports workflows/ afresh for every workflow run: from
# source that cost 9 ms a run, from bytecode 3.4 ms (docs/benchmarks.md).
PACKAGES := activities api models reelscope workflows worker.py
BYTECODE := $(VENV)/.compiled

.PHONY: install run up test lint bench eval clean

install: $(STAMP) $(BYTECODE)

$(BYTECODE): $(STAMP) $(shell find $(PACKAGES) -name '*.py')
	$(BIN)/python -m compileall -q $(PACKAGES)
	touch $(BYTECODE)

# paddleocr depends (through paddlex) on the GUI build opencv-contrib-python, which
# shares the cv2/ folder with the headless build that scenedetect-headless and rapidocr
# use. paddlex checks that opencv-contrib-python is installed (by its metadata), so it
# stays installed, and the headless build of the same version is laid over it last:
# cv2/ is then the headless build, with no libGL or Qt needed at import.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps --force-reinstall opencv-contrib-python==4.10.0.84
	$(BIN)/pip install --quiet --no-deps --force-reinstall opencv-python-headless==4.10.0.84
	$(BIN)/python -c "import cv2, faster_whisper, paddleocr, scenedetect, temporalio, yt_dlp"
	touch $(STAMP)

# The main job: the embedded stack plus the bundled sample, then it stays up.
run: install
	$(BIN)/reelscope up --demo

up: install
	$(BIN)/reelscope up

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/pipeline.py

eval: install
	$(BIN)/python -m eval.run --write docs/quality.md

clean:
	rm -rf $(VENV) .reelscope .pytest_cache .ruff_cache .mypy_cache
