"""``import physinv as pi`` reaches every layer lazily and pulls in no optional extra."""

import subprocess
import sys


def test_public_face_is_lazy_and_pulls_no_extra():
    code = (
        "import sys, physinv as pi\n"
        "assert 'torch' not in sys.modules, 'import physinv alone must stay cheap'\n"
        "sim = pi.problems.poisson.PoissonSimulator\n"
        "problem = pi.invert.InverseProblem\n"
        "heavy = sorted(m for m in ('dolfinx', 'deepxde', 'neuralop', 'gmsh', 'h5py') if m in sys.modules)\n"
        "print(sim.__name__, problem.__name__, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["PoissonSimulator", "InverseProblem", "[]"]


def test_unknown_attribute_is_an_attribute_error():
    import physinv

    try:
        physinv.simz
    except AttributeError as exc:
        assert "simz" in str(exc)
    else:
        raise AssertionError("physinv.simz should not exist")
