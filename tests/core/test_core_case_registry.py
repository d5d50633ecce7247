"""Cases join through the registry: the source tree's scripts and a package's own, run by ``physinv run``."""

import pytest

import physinv.core.registry as registry_module
from physinv.cli import list_cases, main
from physinv.core.errors import DuplicateNameError
from physinv.core.registry import register_case


@pytest.fixture
def cases(monkeypatch):
    """The case registry as the test leaves it is thrown away afterwards."""
    monkeypatch.setattr(registry_module.CASES, "_entries", dict(registry_module.CASES._entries))
    return registry_module.CASES


def test_source_tree_cases_are_registered(cases):
    names = list_cases()
    assert {"poisson_inverse", "eit", "flame_pinn", "calderon_nio", "poisson_dcdm", "sor_bandit"} <= set(names)
    assert names["poisson_inverse"].startswith("Case study")


def test_a_registered_case_script_runs_with_its_flags(cases, tmp_path):
    script = tmp_path / "my_case.py"
    marker = tmp_path / "ran.txt"
    script.write_text('"""My case."""\nimport sys\n'
                      f'open({str(marker)!r}, "w").write(" ".join(sys.argv[1:]))\n'
                      'sys.exit(3 if "--fail" in sys.argv else 0)\n')
    register_case("my_case", str(script), "My case.")
    assert list_cases()["my_case"] == "My case."
    assert main(["run", "my_case", "--quick", "--seed", "4"]) == 0
    assert marker.read_text() == "--quick --seed 4"
    assert main(["run", "my_case", "--fail"]) == 3


def test_a_second_case_under_one_name_is_refused(cases, tmp_path):
    register_case("twice", str(tmp_path / "a.py"))
    register_case("twice", str(tmp_path / "a.py"))  # the same entry again is fine
    with pytest.raises(DuplicateNameError, match="case 'twice' registered twice"):
        register_case("twice", str(tmp_path / "b.py"))


def test_unknown_case_lists_the_registered_ones(cases, capsys):
    assert main(["run", "no_such_case"]) == 2
    err = capsys.readouterr().err
    assert "unknown case 'no_such_case'" in err and "poisson_inverse" in err
