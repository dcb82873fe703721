# The two commands: `make run` (a whole local stack with sample alerts) and `make test`.
# Both install what they need on a fresh machine; see devstack/install.sh.

VENV ?= .venv
PYTHON ?= python3

.PHONY: install run test lint bench compose-check clean lock

NATIVE := native/Cargo.toml native/Cargo.lock native/pyproject.toml native/jobwire_native.pyi \
	$(wildcard native/src/*.rs)

$(VENV)/.installed: pyproject.toml requirements/dev.txt devstack/install.sh devstack/rust.sh $(NATIVE)
	bash devstack/install.sh $(VENV) $(PYTHON)
	touch $@

install: $(VENV)/.installed

run: install  ## Kafka, a mail catcher, a chat sink and jobwire on this machine, with samples.
	$(VENV)/bin/python -m devstack.demo $(DEMO_ARGS)

test: install  ## Lint, type-check, the compose file, and every test against real servers.
	bash devstack/test.sh $(VENV)

bench: install  ## The benchmarks: matching, the API, the store, ledger inserts, PostgreSQL's locale, rendering, GC pauses, a slow target's backlog, then the whole pipeline (~15 min).
	$(VENV)/bin/python bench/bench_matching.py
	$(VENV)/bin/python bench/bench_api.py
	$(VENV)/bin/python bench/bench_store.py
	$(VENV)/bin/python bench/bench_ledger_insert.py
	$(VENV)/bin/python bench/bench_pg_locale.py
	$(VENV)/bin/python bench/bench_render.py
	$(VENV)/bin/python bench/bench_gc_pause.py
	$(VENV)/bin/python bench/bench_slow_target.py
	$(VENV)/bin/python bench/bench_pipeline.py

lock:  ## Pin every dependency again after pyproject.toml changed (LOCK_ARGS=--upgrade: all newest).
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python devstack/lock.py $(LOCK_ARGS)

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
