# Two entry points on a fresh machine (Python 3.11, package registries only):
#   make demo   set up .venv and run the whole flow on a synthetic data set
#   make test   set up .venv, check the code with the linter and the type checker, run the whole test suite
#   make test-arm   the same answers on an emulated arm64 (Raspberry Pi) Debian, byte for byte
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes.
# Also: make test-fast (the suite without tests marked slow), make lint, make typecheck, make bench, make web.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# A stock TFLite reader for the tests, in its own venv: MediaPipe brings an OpenCV and a
# protobuf that cannot share hh's environment.
STOCK := .venv-stock
STOCK_STAMP := $(STOCK)/.installed
# The web app's own packages (LiteRT.js, esbuild), pinned by web/package-lock.json.
WEB_STAMP := web/node_modules/.installed
# make web MODEL=models/run1/model_int8.tflite OUT=web-build [TRUST=field.pub]
OUT ?= web/dist
DEMO ?= demo

.PHONY: setup demo test test-arm test-fast lint typecheck format bench bench-smoke web chromium clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(STOCK_STAMP): Makefile
	$(PYTHON) -m venv $(STOCK)
	$(STOCK)/bin/python -m pip install --quiet --upgrade pip
	$(STOCK)/bin/python -m pip install --quiet mediapipe==1.2.3
	touch $(STOCK_STAMP)

$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(WEB_STAMP)

# The browser tests drive Debian's chromium with Playwright's Python package (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

setup: $(STAMP)

# The phone's app: a static folder (any server can host it) with MODEL built in.
web: $(WEB_STAMP)
	node web/build.mjs $(OUT) $(MODEL) $(if $(TRUST),--trust $(TRUST))

# Python (ruff) and the web app's JavaScript (ESLint, web/eslint.config.js).
lint: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd web && node node_modules/eslint/bin/eslint.js .

# mypy needs the package as it is installed (hh, hh.edge, ...): a tree of links to the folders.
typecheck: $(STAMP)
	@mkdir -p build/typecheck/hh
	@ln -sf ../../../api/__init__.py build/typecheck/hh/__init__.py
	@for pkg in edge trainer converters; do ln -sfn ../../../$$pkg build/typecheck/hh/$$pkg; done
	MYPYPATH=build/typecheck $(BIN)/mypy -p hh

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint typecheck $(STOCK_STAMP) $(WEB_STAMP) chromium
	$(BIN)/pytest

# The same answers on a Raspberry Pi's CPU: an emulated Debian 12 arm64 root (built once, kept in
# /var/cache/hh-arm64), the Pi install inside it, every answer compared with x86's. Needs root
# or sudo; see tests/arm64/run.sh.
test-arm: $(STAMP)
	bash tests/arm64/run.sh

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# The benchmark scripts, full size: they print tables and write bench/results/*.json (see
# BENCHMARKS.md). The real-photo benchmark needs its photos: make bench PHOTOS=path/to/ibean. Each makes what it measures when it is missing; cores, serve and web reuse
# latency's edge int8 model and video when latency has run, and make them otherwise.
bench: $(STAMP) $(WEB_STAMP) chromium
	$(BIN)/python bench/loader.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/field.py
	$(if $(PHOTOS),$(BIN)/python bench/real_photos.py $(PHOTOS),@echo "bench/real_photos.py skipped: give PHOTOS=<a folder of real photos, e.g. iBean>")
	$(BIN)/python bench/cores.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/resize.py
	$(BIN)/python bench/negatives.py
	$(BIN)/python bench/scale.py

# The same scripts at a tiny size, each in its own temporary folder (under a minute each; JSON
# in bench/results/smoke/): that every one still runs, not how fast.
bench-smoke: $(STAMP) $(WEB_STAMP) chromium
	$(BIN)/python bench/loader.py --smoke
	$(BIN)/python bench/latency.py --smoke
	$(BIN)/python bench/train_speed.py --smoke
	$(BIN)/python bench/field.py --smoke
	$(BIN)/python bench/real_photos.py --smoke
	$(BIN)/python bench/cores.py --smoke
	$(BIN)/python bench/serve.py --smoke
	$(BIN)/python bench/web.py --smoke
	$(BIN)/python bench/resize.py --smoke
	$(BIN)/python bench/negatives.py --smoke
	$(BIN)/python bench/scale.py --smoke

# The demo: synthetic leaves -> trained model -> int8 TFLite -> labels on a video, as a user would.
demo: $(STAMP)
	rm -rf $(DEMO)
	$(BIN)/hh-data synth $(DEMO)/data --per-class 500
	$(BIN)/hh-train $(DEMO)/data/train --val-dir $(DEMO)/data/validation --arch edge --image-size 128 --epochs 30 --out $(DEMO)/run
	$(BIN)/hh-convert $(DEMO)/run --int8
	$(BIN)/hh-predict $(DEMO)/run/model_int8.tflite $(DEMO)/data/validation | tail -4
	$(BIN)/hh-data video $(DEMO)/data/validation $(DEMO)/field.avi --repeat 3
	$(BIN)/hh-camera $(DEMO)/run/model_int8.tflite --source $(DEMO)/field.avi --headless --record $(DEMO)/field.csv | tail -3
	@echo "demo finished: run folder $(DEMO)/run, per-frame labels $(DEMO)/field.csv"

clean-demo:
	rm -rf $(DEMO)
