# ckpt — see README.md. `make demo` and `make test` install the C libraries they link when missing
# (scripts/ensure-system-libs.sh), or stop with exit 2 and the one command to run.
SWIFT ?= swift
TORCH_VENV ?= $(or $(CKPT_TORCH_VENV),$(HOME)/.cache/ckpt/venv-torch)
TORCH_PY := $(TORCH_VENV)/bin/python
export CKPT_TORCH_VENV := $(TORCH_VENV)
# Release builds (benchmarks, `make hostile`) link the Swift runtime statically on Linux, as a CLI is
# shipped there: each ckpt-tool process then starts in about 6 ms instead of 10 (no dynamic linking
# of libswiftCore and Foundation). macOS keeps the runtime in the OS.
RELEASE := -c release $(if $(filter Linux,$(shell uname -s)),--static-swift-stdlib)

.PHONY: system-libs build test crash-test fuzz fuzz-totals sanitize hostile demo interop bench fixtures arm64-check clean

system-libs:
	@bash scripts/ensure-system-libs.sh

build: system-libs
	$(SWIFT) build

test: system-libs
	$(SWIFT) build --build-tests
	$(SWIFT) test
	@# The Optim, statistics and diff suites again with the default kernels capped at each narrower
	@# instruction set (CKPT_ISA, read once per process); the fidelity tests also run every variant
	@# side by side. A variant this CPU lacks runs as the next narrower one.
	CKPT_ISA=avx2 $(SWIFT) test --skip-build --filter 'OptimTests|TensorStatisticsTests|StateDiffTests'
	CKPT_ISA=baseline $(SWIFT) test --skip-build --filter 'OptimTests|TensorStatisticsTests|StateDiffTests'

# The catalog's crash tests at length: a trainer SIGKILLed 2,000 times (at each named step of a save
# and a prune, and at random times) and two processes writing 5,000 catalog commits each. `make test`
# runs 200 kills and 1,000 commits. CKPT_CRASH_SEED replays another sequence of kills.
CRASH_ITERATIONS ?= 2000
CONTENTION_COMMITS ?= 5000
crash-test: system-libs
	$(SWIFT) build --build-tests
	CKPT_CRASH_ITERATIONS=$(CRASH_ITERATIONS) CKPT_CONTENTION_COMMITS=$(CONTENTION_COMMITS) \
		$(SWIFT) test --skip-build --filter CrashTests

# Hostile inputs against the resource caps (docs/RELIABILITY.md "Resource caps"): each worst
# fixture through a release ckpt-tool's inspect and verify; fails when one moves peak RSS more than
# 64 MiB above the file's size or takes more than 1 s of CPU per MiB.
hostile: system-libs
	$(SWIFT) build $(RELEASE) --product ckpt-tool
	python3 scripts/hostile_rss.py $$($(SWIFT) build $(RELEASE) --show-bin-path)/ckpt-tool

# libFuzzer + AddressSanitizer on every reader (Fuzz/, docs/TESTING.md "Fuzzing"): each target runs
# FUZZ_SECONDS from its seed corpus and prints its executions; any crash fails. FUZZ_TARGETS picks some.
FUZZ_SECONDS ?= 60
FUZZ_CONFIG ?= release
FUZZ_PARALLEL ?= 1
FUZZ_LEAKS ?= at-exit
fuzz: system-libs
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_CONFIG=$(FUZZ_CONFIG) FUZZ_PARALLEL=$(FUZZ_PARALLEL) FUZZ_LEAKS=$(FUZZ_LEAKS) bash scripts/fuzz.sh

# The executions each target has had over every run in Fuzz/ledger.tsv, against 10^7 per target.
fuzz-totals:
	@bash scripts/fuzz-totals.sh

# The whole suite under AddressSanitizer, then under ThreadSanitizer, each built in its own folder
# (.build-asan, .build-tsan) so the normal build is left alone. The programs the tests start
# (ckpt-tool, fault-child, catalog-crash, train-resume) are built with the same sanitizer and checked
# too. LeakSanitizer is off: Swift keeps references in enum payloads with the case in the pointer's
# spare bits, which LSan does not recognize as pointers, so every tree held by a static fixture is
# reported as leaked (docs/TESTING.md "Sanitizers"). SANITIZE_FILTER runs some suites only.
SANITIZE_FILTER ?=
sanitize_filter = $(if $(SANITIZE_FILTER),--filter '$(SANITIZE_FILTER)')
sanitize: system-libs
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test --skip-build --scratch-path .build-asan $(sanitize_filter)
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	$(SWIFT) test --skip-build --scratch-path .build-tsan $(sanitize_filter)

# A training run in runs/demo: SIGKILLed partway, resumed from the newest whole checkpoint (model,
# optimizer and lr scheduler), its losses and learning rates compared bit for bit with an
# uninterrupted run (Samples/train-resume).
demo: system-libs
	$(SWIFT) build --product ckpt-tool
	$(SWIFT) build --product train-resume
	"$$($(SWIFT) build --show-bin-path)/train-resume" --dir runs/demo

# Real PyTorch reads what ckpt writes (and ckpt reads what PyTorch writes). Needs the torch venv.
interop: system-libs
	@if [ ! -x "$(TORCH_PY)" ]; then echo "interop: no torch venv at $(TORCH_VENV) (set CKPT_TORCH_VENV); NOT RUN"; exit 1; fi
	$(SWIFT) build --product ckpt-tool
	$(SWIFT) build --product optim-resume
	bash scripts/interop.sh "$(TORCH_PY)" "$$($(SWIFT) build --show-bin-path)/ckpt-tool"
	"$(TORCH_PY)" scripts/interop_optim.py "$$($(SWIFT) build --show-bin-path)/optim-resume"
	@# torch on this machine, recorded now, against our kernels (every instruction-set variant).
	rm -rf .build/interop-goldens
	"$(TORCH_PY)" scripts/make_adagrad_goldens.py --out .build/interop-goldens --native-only
	"$(TORCH_PY)" scripts/make_sqrt_goldens.py --out .build/interop-goldens/sqrt --native-only
	"$(TORCH_PY)" scripts/make_sgd_goldens.py --out .build/interop-goldens/sgd --native-only
	$(SWIFT) build --build-tests
	CKPT_ADAGRAD_GOLDENS="$$PWD/.build/interop-goldens" CKPT_SQRT_GOLDENS="$$PWD/.build/interop-goldens/sqrt" \
		CKPT_SGD_GOLDENS="$$PWD/.build/interop-goldens/sgd" \
		$(SWIFT) test --skip-build --filter "AdagradFidelityTests|SqrtGoldenTests|SGDFidelityTests|SGDInteropTests"

bench: system-libs
	$(SWIFT) build $(RELEASE) --product ckpt-bench
	$(SWIFT) build $(RELEASE) --product adagrad-bench
	$(SWIFT) build $(RELEASE) --product stats-bench
	$(SWIFT) build $(RELEASE) --product catalog-bench
	$(SWIFT) build $(RELEASE) --product layout-bench
	$(SWIFT) build $(RELEASE) --product ckpt-tool
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/ckpt-bench"
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/adagrad-bench"
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/adagrad-bench" --optimizer sgd
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/stats-bench"
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/catalog-bench"
	"$$($(SWIFT) build $(RELEASE) --show-bin-path)/layout-bench"
	SWIFT=$(SWIFT) bash scripts/bench_catalog_cli.sh

# Regenerates Tests/Fixtures with real PyTorch; the small files it writes are committed. Fixtures
# whose bits depend on the CPU keep other machines' results (machines/ folders, the golden index).
fixtures:
	@if [ ! -x "$(TORCH_PY)" ]; then echo "fixtures: no torch venv at $(TORCH_VENV)"; exit 1; fi
	"$(TORCH_PY)" scripts/make_fixtures.py Tests/Fixtures
	"$(TORCH_PY)" scripts/make_pickle_fixtures.py
	"$(TORCH_PY)" scripts/make_legacy_fixtures.py Tests/Fixtures
	"$(TORCH_PY)" scripts/make_data_global_fixtures.py Tests/Fixtures
	"$(TORCH_PY)" scripts/make_torchscript_fixtures.py Tests/Fixtures
	@# Weight files shipped in three pip packages (downloaded once into ~/.cache/ckpt/foreign).
	"$(TORCH_PY)" scripts/make_foreign_fixtures.py Tests/Fixtures
	"$(TORCH_PY)" scripts/make_safetensors_fixtures.py Tests/Fixtures/safetensors
	@# DCP checkpoints (one process, and 2 gloo ranks on CPU) and Hugging Face shards (needs huggingface_hub).
	"$(TORCH_PY)" scripts/make_dcp_fixtures.py
	"$(TORCH_PY)" scripts/make_numeric_fixtures.py Tests/Fixtures/numeric
	"$(TORCH_PY)" scripts/make_optim_fixtures.py
	"$(TORCH_PY)" scripts/make_scheduler_fixtures.py
	@# This machine's variants of the fixtures whose bits depend on the CPU (the Adagrad and SGD goldens too).
	"$(TORCH_PY)" scripts/torch_machine.py
	"$(TORCH_PY)" scripts/make_sample.py Samples/data/tiny-run.pt

# The C kernels' portable build run on arm64 under qemu, against this machine's baseline build.
arm64-check:
	bash scripts/arm64/check.sh

clean:
	rm -rf .build .build-asan .build-tsan
