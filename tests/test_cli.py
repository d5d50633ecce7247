import json
import subprocess
import sys


def physinv(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "physinv.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cases_lists_the_poisson_case():
    proc = physinv("cases")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"poisson_inverse", "poisson_dcdm", "sor_bandit"} <= set(names)


def test_help_everywhere():
    for args in (("--help",), ("run", "--help"), ("validate", "--help"), ("verify", "--help"),
                 ("run", "poisson_inverse", "--help"), ("validate", "poisson", "--help")):
        proc = physinv(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "usage" in proc.stdout.lower()


def test_verify_checks_every_registered_simulator():
    proc = physinv("verify", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert {"poisson-fd-2d", "poisson-fd-3d", "poisson-p1"} <= set(results)
    for name, r in results.items():
        if r.get("skipped"):  # an example that needs a missing optional extra (e.g. DOLFINx)
            assert "pip install" in r["skipped"], name
            continue
        assert 1.9 <= r["taylor_slope"] <= 2.1, name
        assert max(r["dot_tests"].values()) <= 1e-10, name
        assert r["gradcheck"] and r["passed"], name


def test_unknown_names_are_clear_errors():
    proc = physinv("validate", "heat")
    assert proc.returncode == 2 and "unknown validation 'heat'" in proc.stderr and "poisson" in proc.stderr
    proc = physinv("verify", "poisson-fd-9d")
    assert proc.returncode == 2 and "unknown simulator" in proc.stderr and "poisson-fd-2d" in proc.stderr


def test_unknown_flags_are_usage_errors():
    proc = physinv("cases", "--bogus")
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr


def test_validate_help_names_the_physinv_command():
    proc = physinv("validate", "poisson", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: physinv validate poisson")


def test_data_generate_refuses_a_negative_seed(tmp_path):
    path = tmp_path / "d.h5"
    proc = physinv("data", "generate", "poisson-2d-kappa", "--n", "2", "--out", str(path), "--seed", "-1")
    assert proc.returncode == 2 and "argument --seed: must be an integer >= 0 and < 2**64; got '-1'" in proc.stderr
    assert not path.exists()
