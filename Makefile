# shaderkit: `make shaders` builds every variant; `make test` checks them all on the default device.
PY      := .venv/bin/python
STAMP   := .venv/.bootstrap-stamp
JOBS    ?=
FUZZ_EXAMPLES ?= 400
SOAK_CALLS    ?= 2000

.PHONY: shaders test lint fuzz bench bench-quick tune soak clean bootstrap

bootstrap $(STAMP): requirements.txt pyproject.toml scripts/bootstrap.sh
	@bash scripts/bootstrap.sh

shaders: $(STAMP)
	@$(PY) -m codegen build $(if $(JOBS),-j $(JOBS))

lint: $(STAMP)
	$(PY) -m ruff check codegen runtime tests bench
	$(PY) -m mypy codegen runtime bench

test: shaders lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

fuzz: shaders
	HYPOTHESIS_PROFILE=fuzz SHADERKIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -m "not gpu" tests/test_properties.py -p no:cacheprovider

bench: shaders
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: shaders
	$(PY) -m bench --quick

# per-device tuning cache under build/tuning/ (see bench/tune.py); TUNE_ARGS=--quick on lavapipe
tune: shaders
	$(PY) -m bench tune $(TUNE_ARGS)

soak: shaders
	$(PY) -m runtime.tools.soak --calls $(SOAK_CALLS)

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
