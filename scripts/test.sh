#!/usr/bin/env bash
# The full test run: Rust unit tests, then the Python suite against the
# installed package. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The unit tests link libpython, so the test binary must find it at run time.
libdir=$(python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
export LD_LIBRARY_PATH="${libdir}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYO3_PYTHON="$(command -v python)"
cargo test --quiet --no-default-features
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --quiet --all-targets --no-default-features -- -D warnings
else
    echo "cargo clippy is not installed; skipping the lint step" >&2
fi

# -X dev turns on asyncio's debug checks and shows ResourceWarnings, which the
# pytest configuration makes errors.
python -X dev -m pytest -q -p no:cacheprovider tests "$@"
