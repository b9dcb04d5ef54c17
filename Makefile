# ckpt — see README.md. Every target works on a fresh machine once `.ci/run`'s packages are installed.
SWIFT ?= swift
TORCH_VENV ?= $(or $(CKPT_TORCH_VENV),$(HOME)/.cache/ckpt/venv-torch)
TORCH_PY := $(TORCH_VENV)/bin/python
export CKPT_TORCH_VENV := $(TORCH_VENV)

.PHONY: build test demo interop bench fixtures clean

build:
	$(SWIFT) build

test:
	$(SWIFT) build --build-tests
	$(SWIFT) test

demo:
	$(SWIFT) build --product convert-and-inspect
	$(SWIFT) run --skip-build convert-and-inspect

# Real PyTorch reads what ckpt writes (and ckpt reads what PyTorch writes). Needs the torch venv.
interop:
	@if [ ! -x "$(TORCH_PY)" ]; then echo "interop: no torch venv at $(TORCH_VENV) (set CKPT_TORCH_VENV); NOT RUN"; exit 1; fi
	$(SWIFT) build --product ckpt-tool
	$(SWIFT) build --product optim-resume
	bash scripts/interop.sh "$(TORCH_PY)" "$$($(SWIFT) build --show-bin-path)/ckpt-tool"
	"$(TORCH_PY)" scripts/interop_optim.py "$$($(SWIFT) build --show-bin-path)/optim-resume"

bench:
	$(SWIFT) build -c release --product ckpt-bench
	$(SWIFT) build -c release --product adagrad-bench
	$(SWIFT) build -c release --product stats-bench
	"$$($(SWIFT) build -c release --show-bin-path)/ckpt-bench"
	"$$($(SWIFT) build -c release --show-bin-path)/adagrad-bench"
	"$$($(SWIFT) build -c release --show-bin-path)/stats-bench"

# Regenerates Tests/Fixtures with real PyTorch; the small files it writes are committed.
fixtures:
	@if [ ! -x "$(TORCH_PY)" ]; then echo "fixtures: no torch venv at $(TORCH_VENV)"; exit 1; fi
	"$(TORCH_PY)" scripts/make_fixtures.py Tests/Fixtures
	"$(TORCH_PY)" scripts/make_pickle_fixtures.py
	"$(TORCH_PY)" scripts/make_safetensors_fixtures.py Tests/Fixtures/safetensors
	"$(TORCH_PY)" scripts/make_numeric_fixtures.py Tests/Fixtures/numeric
	"$(TORCH_PY)" scripts/make_optim_fixtures.py
	"$(TORCH_PY)" scripts/make_adagrad_goldens.py
	"$(TORCH_PY)" scripts/make_sample.py Samples/data/tiny-run.pt

clean:
	rm -rf .build
