"""Run Python code on several MPI ranks for the tests: ``mpiexec -n N`` with this interpreter.

Each rank's stdout and stderr (Python's and the C library's alike) go to files of their own, so
a test reads what each rank printed; a run that outlives its timeout is killed (the whole
process group) and fails the test with what every rank wrote so far.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

#: the ``mpiexec`` the ``mpi`` extra installed beside this interpreter, else the one on PATH
MPIEXEC = str(Path(sys.executable).with_name("mpiexec")) \
    if Path(sys.executable).with_name("mpiexec").exists() else shutil.which("mpiexec")

#: sends this rank's file descriptors 1 and 2 to files of its own, then runs the program
_BOOT = """\
import os, runpy, sys
rank = next(os.environ[k] for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
            if k in os.environ)
for fd, ext in ((1, "out"), (2, "err")):
    f = os.open(os.path.join(sys.argv[1], f"rank{rank}.{ext}"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(f, fd)
sys.stdout = os.fdopen(1, "w", buffering=1)
sys.stderr = os.fdopen(2, "w", buffering=1)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class MPIResult:
    """What a run left: mpiexec's exit status, each rank's stdout and stderr, and what
    mpiexec itself printed."""

    returncode: int
    stdout: list[str]
    stderr: list[str]
    launcher: str

    def report(self) -> str:
        """Everything printed, rank by rank (for assertion messages)."""
        parts = [f"mpiexec exited {self.returncode}; its output:\n{self.launcher}"]
        for r, (out, err) in enumerate(zip(self.stdout, self.stderr, strict=True)):
            parts.append(f"--- rank {r} stdout:\n{out}--- rank {r} stderr:\n{err}")
        return "\n".join(parts)


def mpi_run(code: str, n: int = 2, timeout: float = 30.0, args: tuple[str, ...] = ()) -> MPIResult:
    """Run ``code`` (Python source, dedented; or the path of a ``.py`` file) on ``n`` ranks.

    Raises AssertionError (with every rank's output) if the run outlives ``timeout`` seconds.
    """
    if MPIEXEC is None:
        raise AssertionError("mpiexec not found: pip install -e '.[test]' brings mpich")
    with tempfile.TemporaryDirectory(prefix="aprender-mpi-") as tmp:
        path = Path(tmp)
        if code.endswith(".py") and "\n" not in code:
            program = code
        else:
            program = str(path / "program.py")
            Path(program).write_text(textwrap.dedent(code))
        (path / "boot.py").write_text(_BOOT)
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        cmd = [MPIEXEC, "-n", str(n), sys.executable, str(path / "boot.py"), tmp, program,
               *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env, start_new_session=True)
        try:
            launcher, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            launcher, _ = proc.communicate()
            timed_out = True

        def read(name: str) -> str:
            f = path / name
            return f.read_text(errors="replace") if f.exists() else ""

        result = MPIResult(proc.returncode, [read(f"rank{r}.out") for r in range(n)],
                           [read(f"rank{r}.err") for r in range(n)], launcher)
    if timed_out:
        raise AssertionError(f"mpiexec -n {n} ran past {timeout} s (a hang)\n{result.report()}")
    return result


def mpi_check(code: str, n: int = 2, timeout: float = 30.0,
              args: tuple[str, ...] = ()) -> list[str]:
    """``mpi_run`` that must succeed: each rank's stdout (AssertionError with every rank's
    output otherwise)."""
    result = mpi_run(code, n, timeout, args)
    if result.returncode != 0:
        raise AssertionError(f"mpiexec -n {n} failed\n{result.report()}")
    return result.stdout
