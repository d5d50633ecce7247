"""benchmarks/gpu_check.py: without CUDA a clear message and exit 0; a CPU dry run of every section; bad options.

The dry run (``--device cpu --tiny``) compares the CPU with itself, so what is asserted here is
what can fail anyway: the JSON schema, every verification ladder's numbers, every kernel's timing
and its agreement with the CPU result, the case's metrics, and the exit code when a check fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physinv.core.simulator import registered_simulators
from physinv.core.verification import DOT_TOL, SLOPE_BOUNDS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
SAMPLERS = {"sample_prior heun (stationary Gaussian)", "sample_prior euler (Gaussian mixture)",
            "sample_prior ancestral (Gaussian mixture)", "sample_dps (linear problem)", "sample_enkg (linear problem)"}


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("physinv_bench_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def dry_run(gpu_check, tmp_path_factory):
    """``--device cpu --tiny`` of every section, the cases limited to poisson_inverse (one thread)."""
    out = tmp_path_factory.mktemp("gpu_check")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = gpu_check.main(["--device", "cpu", "--tiny", "--cases", "poisson_inverse", "--repeat", "2",
                             "--warmup", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return rc, json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_without_cuda_it_says_so_and_runs_nothing(gpu_check, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    assert gpu_check.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gpu_check: no CUDA device" in printed and "torch.cuda.is_available() is False" in printed
    assert "nothing was run" in printed and "python benchmarks/gpu_check.py" in printed
    assert not out.exists()


def test_script_entry_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gpu_check: no CUDA device") and "nothing was run" in proc.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, message", [
    (["--sections", "verify,bench"], "unknown section(s) bench; allowed: verify, equal, cases, speed"),
    (["--simulators", "poisson-fd-2d,poisson-fd-9d"], "unknown simulator(s) poisson-fd-9d; allowed: calderon-fd"),
    (["--cases", "poisson"], "unknown case(s) poisson; allowed: calderon_nio"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--parallel-cases", "0"], "--parallel-cases must be >= 1; got 0"),
])
def test_bad_options_exit_2_and_write_nothing(gpu_check, capsys, tmp_path, option, message):
    out = tmp_path / "out"
    assert gpu_check.main(["--device", "cpu", "--tiny", *option, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_dry_run_writes_json_and_markdown(dry_run):
    rc, result, md = dry_run
    assert rc == 0 and result["passed"] is True and result["failures"] == []
    assert list(result["sections"]) == ["cases", "equal", "speed", "verify"]  # JSON keys sorted
    env = result["environment"]
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and env["physinv"]
    assert {"cuda", "cudnn", "git_commit", "device_name", "tf32_defaults"} <= set(env)
    assert result["options"]["tiny"] is True and result["wall_s"] > 0
    for section, counts in result["summary"].items():
        assert counts.get("failed", 0) == 0, section
    for title in ("## verify", "## equal", "## speed", "## cases", "All checks passed", "poisson_inverse"):
        assert title in md


def test_dry_run_verify_ladders(dry_run):
    records = dry_run[1]["sections"]["verify"]
    assert set(records) == set(registered_simulators())
    for name, r in records.items():
        if r["status"] == "skipped":  # a missing optional extra, named
            assert "pip install" in r["reason"], name
            continue
        assert r["status"] == "passed", (name, r)
        assert SLOPE_BOUNDS[0] <= r["taylor_slope"] <= SLOPE_BOUNDS[1], name
        assert r["max_dot_mismatch"] <= DOT_TOL and r["gradcheck"] is True, name


def test_dry_run_cpu_equals_device(dry_run):
    records = dry_run[1]["sections"]["equal"]
    assert set(records) == {f"simulator {name}" for name in registered_simulators()} | SAMPLERS
    for name, r in records.items():
        if r["status"] == "skipped":
            continue
        assert r["status"] == "passed" and r["on_device"] is True, (name, r)
        assert r["tolerance"] == 1e-8 and 0 <= r["max_rel_diff"] <= r["tolerance"], name
    assert all(records[name]["status"] == "passed" for name in SAMPLERS)


def test_dry_run_speed_kernels(dry_run, gpu_check):
    records = dry_run[1]["sections"]["speed"]
    assert list(records) == sorted(kernel.name for kernel in gpu_check.KERNELS)
    assert {"Poisson apply (FD, bound kappa)", "Poisson CG solve (matrix-free)", "EIT Jacobian (CEM, adjoint method)",
            "spectral NS (IF-RK4 steps)"} <= {n for n, r in records.items() if r["status"] == "passed"}
    for name, r in records.items():
        if r["status"] == "skipped":  # deepwave, neuraloperator or diffusers missing
            assert "pip install" in r["reason"], name
            continue
        assert r["status"] == "passed", (name, r)
        assert r["cpu_s"] > 0 and r["device_s"] > 0
        assert r["time_ratio"] == pytest.approx(r["device_s"] / r["cpu_s"])
        assert 0 <= r["difference"] <= r["tolerance"] <= 1e-3, name
    cg = records["Poisson CG solve (matrix-free)"]
    assert 1e-12 < cg["difference"] <= 2 * gpu_check.CG_RTOL  # a real residual, not a trivial 0


def test_dry_run_case(dry_run):
    (name, r), = dry_run[1]["sections"]["cases"].items()
    assert name == "poisson_inverse" and r["status"] == "passed" and r["rc"] == 0
    assert r["command"] == "physinv run poisson_inverse --quick --device cpu"  # the case has no --smoke
    assert r["wall_s"] > 0 and r["metrics"]["kappa_rel_l2"] <= 0.15


def test_a_failed_check_gives_exit_1(gpu_check, monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_check, "EQUAL_TOL", -1.0)  # no difference can pass
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--sections", "equal", "--simulators", "poisson-fd-2d",
                         "--out", str(tmp_path)])
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 1 and result["passed"] is False
    assert "equal/simulator poisson-fd-2d: outside the tolerance" in result["failures"]
    assert "FAILED" in (tmp_path / "gpu_check.md").read_text()


def test_cases_out_of_time_are_reported_not_dropped(gpu_check, tmp_path):
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--sections", "cases", "--cases", "poisson_inverse,eit",
                         "--time-budget", "1", "--out", str(tmp_path / "budget")])
    records = json.loads((tmp_path / "budget" / "gpu_check.json").read_text())["sections"]["cases"]
    assert rc == 0 and set(records) == {"poisson_inverse", "eit"}
    assert "All checks passed (2 item(s) not checked" in (tmp_path / "budget" / "gpu_check.md").read_text()
    assert all(r["status"] == "not run" and "time budget" in r["reason"] for r in records.values())
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--sections", "cases", "--cases", "poisson_inverse",
                         "--case-timeout", "3", "--out", str(tmp_path / "timeout")])
    (r,) = json.loads((tmp_path / "timeout" / "gpu_check.json").read_text())["sections"]["cases"].values()
    assert rc == 0 and r["status"] == "timeout" and r["rc"] is None and r["timeout_s"] == 3
    rc = gpu_check.main(["--device", "cpu", "--tiny", "--sections", "cases", "--cases", "poisson_inverse,sor_bandit",
                         "--parallel-cases", "2", "--case-timeout", "3", "--out", str(tmp_path / "parallel")])
    records = json.loads((tmp_path / "parallel" / "gpu_check.json").read_text())["sections"]["cases"]
    assert rc == 0 and list(records) == ["poisson_inverse", "sor_bandit"]
    assert all(r["status"] == "timeout" and r["rc"] is None for r in records.values())
    assert not gpu_check._RUNNING  # every case's process group was stopped and reaped


def test_case_flag(gpu_check):
    cases = Path(__file__).resolve().parents[2] / "cases"
    assert gpu_check.case_flag(str(cases / "eit.py"), tiny=True) == "--smoke"  # add_training_flags
    assert gpu_check.case_flag(str(cases / "fluid_inverse.py"), tiny=True) == "--smoke"  # its own --smoke
    assert gpu_check.case_flag(str(cases / "poisson_inverse.py"), tiny=True) == "--quick"
    assert gpu_check.case_flag(str(cases / "eit.py"), tiny=False) == "--quick"


def test_relative_difference(gpu_check):
    a = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    assert gpu_check.relative_difference(a, a.clone()) == 0.0
    assert gpu_check.relative_difference((a, a), (a, a + torch.tensor([0.0, 0.0, 1e-3]))) == pytest.approx(2.5e-4)
    z = torch.tensor([1 + 1j, 2 - 1j], dtype=torch.complex128)
    assert gpu_check.relative_difference(z, z * (1 + 1e-6j)) == pytest.approx(1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        gpu_check.relative_difference(a, a[:2])


def test_missing_extra_is_a_skip_and_an_error_a_failure(gpu_check):
    from physinv.core.errors import MissingExtraError

    def missing():
        raise MissingExtraError("optional dependency 'deepwave' is not installed; install it with: "
                                "pip install 'physinv[seismic]'")

    skipped, failed = gpu_check.guarded(missing), gpu_check.guarded(lambda: 1 / 0)
    assert skipped["status"] == "skipped" and "physinv[seismic]" in skipped["reason"]
    assert failed["status"] == "failed" and failed["error"] == "ZeroDivisionError: division by zero"
    assert gpu_check.MISSING_EXTRA.search("physinv: error: optional dependency 'dolfinx' is not installed "
                                          "(needed for X); install it with: pip install 'physinv[fem]'")


def test_an_unwritable_out_is_refused_before_any_work(gpu_check, capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(blocker / "out")]) == 2
    assert "give a writable folder" in capsys.readouterr().err


def test_non_finite_numbers_are_kept_as_names(gpu_check):
    record = {"difference": float("nan"), "times": (1.0, float("inf"))}
    assert gpu_check.json_safe(record) == {"difference": "nan", "times": [1.0, "inf"]}
    assert gpu_check.verdict(float("nan") <= 1e-8) == "failed"
