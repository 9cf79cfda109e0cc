# The two commands of the README. Each creates .venv with python3 and installs what it needs.
VENV ?= .venv
PIP := $(VENV)/bin/pip

.PHONY: serve test audit

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

serve: $(VENV)/bin/python
	$(PIP) install --quiet -e .
	$(VENV)/bin/whatsapp-api serve

# The browser test drives Debian's chromium; as root, install it when it is missing.
test: $(VENV)/bin/python
	command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(PIP) install --quiet -e '.[test]'
	$(VENV)/bin/pytest

# The dependency audit, by hand where a vulnerability service answers (PyPI's JSON API, or
# osv.dev: `make audit AUDIT_FLAGS="-s osv"`); it fails on a known vulnerability, and with
# --strict on a dependency it could not look up.
audit: $(VENV)/bin/python
	$(PIP) install --quiet -e '.[test]'
	$(VENV)/bin/pip-audit --strict --skip-editable $(AUDIT_FLAGS)
