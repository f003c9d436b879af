# The two commands of README.md. Each bootstraps .venv by itself (idempotent, quick when done).
PY := .venv/bin/python

.PHONY: bootstrap test demo lint test-cpu-kinds
bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest -q tests

demo: bootstrap
	$(PY) tools/demo.py

# The numerical and training tests that depend on the CPU's kernels, re-run with oneDNN capped at
# the AVX2 kernels and with ATen's vectorised kernels at AVX2 and at none (what AVX2-only and
# older machines run). .ci/run calls it after `make test`.
CPU_KIND_TESTS := tests/test_ops.py tests/test_cells.py tests/test_cpu_kernels.py \
	tests/convert/test_timm.py tests/convert/test_pretrainedmodels.py \
	tests/detection/test_demo.py tests/search/test_transfer.py tests/search/test_tabular.py
CPU_KINDS := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ATEN_CPU_CAPABILITY=default
test-cpu-kinds: bootstrap
	@for kind in $(CPU_KINDS); do \
	  echo "[cpu kind] $$kind"; \
	  env $$kind $(PY) -m pytest -q -p no:cacheprovider $(CPU_KIND_TESTS) || exit 1; \
	done
