#!/usr/bin/env bash
# The two entry points of the README, each doing all set-up itself:
#   ./dev.sh case  [args...]   set up .venv, run cases/poisson_inverse.py --quick
#   ./dev.sh test  [args...]   set up .venv, run the default test suite
# The virtual environment lives at .venv and is reused while pyproject.toml
# is unchanged (a stamp file stores its hash).
set -euo pipefail
cd "$(dirname "$0")"

find_python312() {
    local cand
    for cand in "${PHYSINV_PYTHON:-}" python3.12 python3 python; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    # pyenv installs answer only with a version selected; look for one directly.
    if command -v pyenv >/dev/null 2>&1; then
        for cand in "$(pyenv root)"/versions/3.1[2-9]*/bin/python3; do
            [ -x "$cand" ] && { echo "$cand"; return 0; }
        done
    fi
    return 1
}

setup_venv() {
    local stamp=.venv/.physinv-stamp want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    if [ ! -x .venv/bin/python ]; then
        local py
        py=$(find_python312) || { echo "error: physinv needs Python >= 3.12; none found on PATH or in pyenv (set PHYSINV_PYTHON=/path/to/python3.12)" >&2; exit 1; }
        echo ">> creating .venv with $py" >&2
        "$py" -m venv .venv
    fi
    echo ">> installing physinv with all extras into .venv (first time: a few minutes)" >&2
    # dolfinx-adjoint (the reference peer of cases/custom_pde.py) goes in without its dependencies: it
    # and fenicsx-compat declare fenics-dolfinx, a distribution the dolfinx-solver-real wheel does not
    # provide, so a plain `pip install dolfinx-adjoint` fails; its real dependency pyadjoint-ad comes with
    # the "peers" extra of ".[all]".
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".[all]" &&
           .venv/bin/python -m pip install --no-deps dolfinx-adjoint==0.4.0 fenicsx-compat==0.4.0; } \
           >.venv/install.log 2>&1; then
        tail -n 40 .venv/install.log >&2
        echo "error: installing physinv into .venv failed (full log: .venv/install.log)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
}

cmd=${1:-}
shift || true
case "$cmd" in
    case)
        setup_venv
        exec .venv/bin/python cases/poisson_inverse.py --quick "$@"
        ;;
    test)
        setup_venv
        exec .venv/bin/python -m pytest "$@"
        ;;
    setup)
        setup_venv
        ;;
    *)
        echo "usage: ./dev.sh case|test|setup [extra arguments]" >&2
        exit 2
        ;;
esac
