# edgepilot: `make demo`, `make test`, `make bench` each set up what they need first.
# As root on Debian they install the system packages with apt-get; elsewhere they say what is missing.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# libportaudio2: sounddevice; dataset-fashion-mnist, darknet (test photos), opencv-doc (videos):
# offline data; mosquitto, ffmpeg, chromium(-driver): real broker, stream and browser in tests;
# espeak-ng, flite, festival + festvox voices, wamerican, fortunes: offline synthetic speech for keyword
# spotting; alsa-utils: the file-backed microphone.
APT_PACKAGES = libportaudio2 dataset-fashion-mnist darknet opencv-doc mosquitto ffmpeg chromium chromium-driver \
  espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts wamerican fortunes alsa-utils

.PHONY: demo test bench setup system-deps test-legacy clean

setup: system-deps $(STAMP)

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	  if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo "note: system package $$p is missing; install it as root"; done; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) scripts/assets.py fetch >/dev/null
	$(PY) -m pytest
	$(MAKE) test-legacy

# The runtime tests again in a small numpy<2 + tflite-runtime environment (no TensorFlow, no LiteRT).
test-legacy:
	bash scripts/legacy_env.sh

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .venv-legacy .pytest_cache
