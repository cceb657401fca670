#!/usr/bin/env bash
# Install what the tests need (Debian packages and the Python test extras), then run them.
# Docker-dependent tests skip without an engine locally; under CI=true they must run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/bin/chromium ] || need+=(chromium)  # the report's browser test renders report.html headless
[ -x /usr/sbin/sshd ] || need+=(openssh-server)  # a test host is reached over ssh:// (tests/support/testhosts.py)
[ -x /usr/bin/docker-compose ] || need+=(docker-compose)  # Debian's 1.29: what compose users do today (tests/integration/test_compose.py)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m pip install -q -e '.[test]'
# Lint and types first: a finding fails the run before any test starts (configured in pyproject.toml).
python3 -m ruff check src tests benchmarks
python3 -m mypy
# Two workers, a test file each at a time: files that share a deployment stay together.
python3 -m pytest -n 2 --dist loadfile -m "not engine_restart" "$@"
# Then, alone (every other test's containers would be stopped with the engine), the tests
# that restart the Docker engine.
python3 -m pytest -m engine_restart "$@" || [ $? -eq 5 ]  # 5: the arguments select none of them
