"""`python -m trnsim run|pytest`: unmodified scripts and suites, aliases only in that process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from neuronxcc import nki
    import neuronxcc.nki.language as nl
    from helper_mod import FACTOR

    @nki.jit
    def scale(a):
        out = nl.ndarray(a.shape, dtype=a.dtype, buffer=nl.shared_hbm)
        nl.store(out, nl.multiply(nl.load(a), FACTOR))
        return out

    if __name__ == "__main__":
        a = np.full((128, 32), 2.0, np.float32)
        r = nki.simulate_kernel(scale, a)
        print("ARGS", sys.argv[1:], float(r[5, 7]))
        sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
    """
)


def _write(tmp: Path) -> Path:
    (tmp / "helper_mod.py").write_text("FACTOR = 1.5\n")
    p = tmp / "kern.py"
    p.write_text(SCRIPT)
    return p


def test_run_script_like_python(tmp_path):
    p = _write(tmp_path)
    r = subprocess.run([sys.executable, "-m", "trnsim", "run", str(p), "hello", "x"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "ARGS ['hello', 'x'] 3.0" in r.stdout


def test_run_propagates_exit_code(tmp_path):
    p = _write(tmp_path)
    r = subprocess.run([sys.executable, "-m", "trnsim", "run", str(p), "3"], capture_output=True, text=True)
    assert r.returncode == 3


def test_pytest_suite_runs_with_aliases(tmp_path):
    _write(tmp_path)
    (tmp_path / "test_k.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            import neuronxcc.nki as nki
            from kern import scale

            def test_scale():
                a = np.random.rand(128, 32).astype(np.float32)
                np.testing.assert_allclose(nki.simulate_kernel(scale, a), a * 1.5, rtol=1e-6)
            """
        )
    )
    r = subprocess.run(
        [sys.executable, "-m", "trnsim", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "test_k.py")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_importing_trnsim_does_not_install_aliases():
    code = "import sys, trnsim; import trnsim.frontend.legacy; print('neuronxcc' in sys.modules, 'nki' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False False", r.stderr


def test_kernel_error_exit_status_and_message(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import neuronxcc.nki as nki
            import neuronxcc.nki.language as nl

            @nki.jit
            def bad(a):
                t = nl.ndarray((200, 4), dtype=nl.float32, buffer=nl.sbuf)
                return t

            nki.simulate_kernel(bad, np.ones((4, 4), np.float32))
            """
        )
    )
    r = subprocess.run([sys.executable, "-m", "trnsim", "run", str(p)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{p}:8: [err_num_partition_exceed_arch_limit]" in r.stderr
    assert "/trnsim/core/" not in r.stderr
