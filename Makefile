# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each builds the environment first when it is missing or out of date.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ivtuning-setup
# Keep DDS discovery on this machine (tests, demo, benchmarks).
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup test demo lint bench clean
setup: $(STAMP)

$(STAMP): requirements.txt requirements-robot.txt requirements-nodeps.txt setup.py package.xml CMakeLists.txt $(wildcard msg/*.msg compat/*/msg/*.msg compat/*/CMakeLists.txt) scripts/setup_env.sh scripts/build_msgs.sh
	scripts/setup_env.sh $(VENV)
	touch $@

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/ivtuning demo --out demo_out

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf build demo_out .pytest_cache
