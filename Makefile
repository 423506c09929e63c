# shaderkit: `make shaders` builds every variant; `make test` checks them all on the default device.
PY      := .venv/bin/python
STAMP   := .venv/.bootstrap-stamp
JOBS    ?=
FUZZ_EXAMPLES ?= 400
SOAK_CALLS    ?= 2000
FUZZ_SEED     ?= $(shell date +%s)

.PHONY: shaders test lint fuzz bench bench-quick tune soak clean bootstrap

bootstrap $(STAMP): requirements.txt pyproject.toml scripts/bootstrap.sh
	@bash scripts/bootstrap.sh

shaders: $(STAMP)
	@$(PY) -m codegen build $(if $(JOBS),-j $(JOBS))

lint: $(STAMP)
	$(PY) -m ruff check codegen runtime tests bench examples
	$(PY) -m mypy codegen runtime bench examples

test: shaders lint
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q

# the property tests on the plain build and on a glslc -O build (build/opt), the same cases for both
# (one --hypothesis-seed); tests/differential.py reports every difference as a finding with the variant
fuzz: shaders
	-@$(PY) -m codegen build -O --out build/opt $(if $(JOBS),-j $(JOBS))
	@status=0; \
	for build in plain opt; do \
	  env HYPOTHESIS_PROFILE=fuzz SHADERKIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) SHADERKIT_LEDGER=build/fuzz-$$build.json \
	    SHADERKIT_SEED=$(FUZZ_SEED) \
	    SHADERKIT_BUILD=$$( [ $$build = opt ] && echo build/opt || echo build ) \
	    $(PY) -m pytest -q -m "not gpu" tests/test_properties.py -p no:cacheprovider --hypothesis-seed=$(FUZZ_SEED) \
	    || status=1; \
	done; \
	$(PY) -m tests.differential build/fuzz-plain.json build/fuzz-opt.json \
	  --plain-manifest build/manifest.json --opt-manifest build/opt/manifest.json || status=1; \
	exit $$status

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
