"""The README's example must keep working (examples that rot are a known failure of peer libraries)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_commands():
    lines = [ln for ln in README.read_text().splitlines() if ln.strip()]
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block[0].startswith("./dev.sh case") and block[1].startswith("./dev.sh test")


def test_readme_python_example_runs_and_recovers_kappa(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    kappa, kappa_true = namespace["kappa"], namespace["kappa_true"]
    error = float((kappa - kappa_true).norm() / kappa_true.norm())
    initial = float((2.0 - kappa_true).norm() / kappa_true.norm())
    assert error < 0.6 * initial
    assert "relative error" in capsys.readouterr().out
