"""The fenced code blocks of ``docs/**/*.md``: extraction, classification, execution and command checks.

Every fenced block (```` ``` ```` or ``~~~``, at any indentation, e.g. inside a list) carries a
language tag, and the tag decides what the tests do with it:

``python`` / ``py``
    executed: the blocks of one page in order, in one namespace, in a process of their own whose
    working directory is an empty temporary folder (``OMP_NUM_THREADS=1``, matplotlib on Agg),
    forked from a server that imported torch and physinv (:class:`PageRunner`; where it cannot
    fork, a fresh interpreter per page);
``bash`` / ``sh`` / ``shell`` / ``console``
    shell commands (in a ``console`` block only the ``$ `` lines): each command is parsed by the
    real argument parser of what it calls (``physinv``, a case, a benchmark, a ``python -m``
    module, also behind ``torchrun``/``mpiexec``/``VAR=value``), and cheap ones are run;
    commands the tests cannot check (``pip install``, ``./dev.sh``, ...) are listed in
    :data:`UNCHECKED` with the reason;
``text``
    program output, formulas, listings: not code.

An untagged block, or a tag not listed here, fails the tests.

    python tests/docs/codeblocks.py          # the inventory: blocks per page, each command and its check
    python tests/docs/codeblocks.py --run    # the same, then execute and check everything (times per page)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

PYTHON = frozenset({"python", "py"})
SHELL = frozenset({"bash", "sh", "shell", "console"})
TEXT = frozenset({"text"})
KINDS = {**{t: "python" for t in PYTHON}, **{t: "shell" for t in SHELL}, **{t: "text" for t in TEXT}}

# Modules of the optional extras: a page whose code fails to import one of them is skipped, naming the extra.
EXTRA_MODULES = {"dolfinx": "fem", "ufl": "fem", "basix": "fem", "petsc4py": "fem", "mpi4py": "fem",
                 "gmsh": "fem", "deepwave": "seismic", "diffusers": "diffusion", "deepxde": "learn",
                 "neuralop": "learn"}

# Programs whose lines the tests do not check, and why (a line starting with any other program must be checked).
UNCHECKED = {
    "./dev.sh": "sets up .venv and runs the README's entry points; CI runs ./dev.sh itself",
    "pip": "installs packages from the network",
    "mkdocs": "builds the documentation site; tests/docs/test_site.py runs mkdocs build --strict itself",
    "gmsh": "regenerates a mesh shipped in meshes/ (the mesh tests check the shipped files)",
    "cd": "changes the shell's directory only",
    "export": "sets a shell variable only",
    "git": "version control, not physinv",
}

# physinv subcommands cheap enough to run for real (seconds); the others are parsed only.
CHEAP_PHYSINV = (("cases",), ("data", "list"), ("verify",))


@dataclass
class Block:
    page: str  # path relative to docs/
    line: int  # markdown line of the opening fence (1-based)
    tag: str  # the language tag, "" when untagged
    code: str  # the content, dedented by the fence's indentation

    @property
    def kind(self) -> str:
        """``python``, ``shell``, ``text``, ``untagged`` or ``unknown``."""
        if not self.tag:
            return "untagged"
        return KINDS.get(self.tag.lower(), "unknown")

    @property
    def where(self) -> str:
        return f"{self.page if os.path.isabs(self.page) else 'docs/' + self.page}:{self.line}"


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")


def _tag(info: str) -> str:
    """The language of an info string: ``python``, ``{.python title="x"}``, ``py title="x"``."""
    info = info.strip().lstrip("{").strip()
    if not info:
        return ""
    return info.split()[0].lstrip(".").rstrip("}")


def extract(path: Path) -> list[Block]:
    """All fenced blocks of a markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(DOCS).as_posix() if path.is_relative_to(DOCS) else str(path)
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        body, j = [], i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"]:
                break
            text = lines[j]
            body.append(text[indent:] if text[:indent].strip() == "" else text.lstrip())
            j += 1
        blocks.append(Block(page, i + 1, _tag(m["info"]), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in extract(p)]


# --------------------------------------------------------------------------------------------------------------
# shell commands


@dataclass
class Command:
    block: Block
    line: int  # markdown line of the command's first line
    text: str
    argv: list[str] = field(default_factory=list)


def commands(block: Block) -> list[Command]:
    """The commands of a shell block: continuation lines joined, comments dropped; in a ``console``
    block only the lines after a ``$ `` prompt (the others are output)."""
    out, pending, start = [], "", None
    for offset, raw in enumerate(block.code.splitlines()):
        line = raw.rstrip()
        if not pending:
            if block.tag == "console":
                if not line.lstrip().startswith("$"):
                    continue
                line = line.lstrip()[1:]
            start = block.line + 1 + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        argv = shlex.split(text, comments=True)
        if argv:
            out.append(Command(block, start, text, argv))
    return out


class _Parsed(Exception):
    """Raised by the patched ``ArgumentParser.parse_args``: the command line parsed; nothing ran."""

    def __init__(self, namespace):
        self.namespace = namespace


class CommandError(AssertionError):
    pass


@contextlib.contextmanager
def _parse_only(argv0: str, args: list[str]):
    """``ArgumentParser.parse_args`` parses, then stops the program (``_Parsed``); ``sys.argv`` set for scripts
    that read it."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    saved = sys.argv
    argparse.ArgumentParser.parse_args = parse_args
    sys.argv = [argv0, *args]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original
        sys.argv = saved


def _call_parse_only(main, argv0: str, args: list[str], what: str) -> None:
    """Call ``main(args)`` of a program whose first act is to parse its command line; stop right after."""
    err = io.StringIO()
    with _parse_only(argv0, args), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(args)
        except _Parsed:
            return
        except SystemExit as exc:
            if exc.code in (0, None) and any(a in ("-h", "--help") for a in args):
                return
            raise CommandError(f"{what} refuses {shlex.join(args)!r} (exit {exc.code}): {err.getvalue().strip()}")
    raise CommandError(f"{what}: main() returned without parsing its command line; the docs checker cannot "
                       "parse it without running it")


def _script_main(path: Path):
    if not path.is_file():
        raise CommandError(f"no such script {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    namespace = runpy.run_path(str(path), run_name="physinv_docs_check")
    if "main" not in namespace:
        raise CommandError(f"{path} has no main(argv)")
    return namespace["main"]


def _module_main(module: str):
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise CommandError(f"python -m {module}: {exc}") from None
    if not hasattr(mod, "main"):
        raise CommandError(f"python -m {module}: the module has no main(argv) the checker can call")
    return mod.main


def _python(args: list[str], what: str) -> str:
    """``python [-m MOD | SCRIPT] ARGS``: parse ARGS with the program's parser."""
    if args[:1] == ["-m"] and len(args) > 1:
        _call_parse_only(_module_main(args[1]), args[1], args[2:], f"python -m {args[1]}")
        return "parsed"
    if args and args[0].endswith(".py"):
        path = ROOT / args[0]
        _call_parse_only(_script_main(path), str(path), args[1:], f"python {args[0]}")
        return "parsed"
    raise CommandError(f"{what}: the docs checker does not know how to check {shlex.join(args)!r}")


def _physinv(args: list[str], run_cheap: bool) -> str:
    from physinv import cli
    from physinv.core.registry import CASES, VALIDATIONS

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            ns = cli.build_parser().parse_args(args)
        except SystemExit as exc:
            if exc.code in (0, None):
                return "run"  # --help printed
            raise CommandError(f"physinv refuses {shlex.join(args)!r}: {err.getvalue().strip()}") from None
    if ns.command == "run":
        cli.register_source_cases()
        _call_parse_only(_script_main(Path(CASES.get(ns.name).path)), f"{ns.name}.py", ns.rest,
                         f"physinv run {ns.name}")
    elif ns.command == "validate":
        _call_parse_only(VALIDATIONS.get(ns.name).main, f"physinv validate {ns.name}", ns.rest,
                         f"physinv validate {ns.name}")
    elif ns.command == "data" and ns.data_command == "generate":
        from physinv.learn import data

        data.get_dataset(ns.name).resolve_params(dict(cli._param_value(p) for p in ns.param))
    cheap = any(tuple(args[:len(c)]) == c for c in CHEAP_PHYSINV)
    if ns.command == "verify" and not ns.names:
        cheap = False  # every registered simulator: a minute or more; the contract tests run them all
    if not (cheap and run_cheap):
        return "parsed"
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = cli.main(args)
    if code != 0:
        raise CommandError(f"physinv {shlex.join(args)} exited {code}: {err.getvalue().strip()[-2000:]}")
    return "run"


def _torchrun(args: list[str]) -> str:
    """``torchrun [its --flags] (-m MOD | SCRIPT) ARGS``: parse the program's ARGS."""
    i = 0
    while i < len(args) and args[i].startswith("--"):
        i += 1 if "=" in args[i] or args[i] == "--standalone" else 2
    return _python(args[i:], "torchrun")


def _mpiexec(args: list[str], run_cheap: bool) -> str:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-n", "-np", "--np", "-host", "--host") else 1
    return check_argv(args[i:], run_cheap)


def _program(argv: list[str]) -> list[str]:
    """Drop ``VAR=value`` prefixes; ``.venv/bin/NAME`` is ``NAME``."""
    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
        argv = argv[1:]
    if argv and argv[0].startswith((".venv/bin/", "venv/bin/")):
        argv = [argv[0].rsplit("/", 1)[1], *argv[1:]]
    return argv


def plan(argv: list[str]) -> str:
    """What :func:`check_argv` will do with a command, without doing it: ``unchecked: reason`` or ``check``."""
    argv = _program(argv)
    if argv and argv[0] in UNCHECKED:
        return f"unchecked: {UNCHECKED[argv[0]]}"
    return "check"


def check_argv(argv: list[str], run_cheap: bool = True) -> str:
    """Parse (and, when cheap, run) one command; returns ``run``, ``parsed`` or ``unchecked: reason``;
    raises :class:`CommandError` when the command is wrong."""
    argv = _program(argv)
    if not argv:
        raise CommandError("empty command")
    prog, args = argv[0], argv[1:]
    if prog in UNCHECKED:
        return f"unchecked: {UNCHECKED[prog]}"
    if prog == "physinv":
        return _physinv(args, run_cheap)
    if prog in ("python", "python3"):
        return _python(args, prog)
    if prog == "torchrun":
        return _torchrun(args)
    if prog in ("mpiexec", "mpirun"):
        return _mpiexec(args, run_cheap)
    raise CommandError(f"the docs checker does not know the program {prog!r}: teach tests/docs/codeblocks.py to "
                       "check it, or list it in UNCHECKED with the reason")


# --------------------------------------------------------------------------------------------------------------
# python blocks


def run_page_subprocess(page: str, timeout: float = 300) -> dict:
    """Execute the Python blocks of ``docs/page`` in a fresh interpreter in an empty temporary folder.

    Returns ``{"status": "ok"|"failed"|"skipped", "blocks": [[line, seconds], ...], "message": str,
    "seconds": float, "output": str}``.
    """
    env = _page_env()
    with tempfile.TemporaryDirectory(prefix="physinv-docs-") as tmp:
        report = Path(tmp) / "report.json"
        work = Path(tmp) / "work"
        work.mkdir()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--exec-page", page, "--report",
                               str(report)], cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        seconds = time.perf_counter() - t0
        result = json.loads(report.read_text()) if report.is_file() else \
            {"status": "failed", "blocks": [], "message": f"the page runner died (exit {proc.returncode})"}
    result["seconds"] = seconds
    result["output"] = (proc.stdout + proc.stderr)[-6000:]
    return result


# Imported once by the page server before it forks a child per page (never DOLFINx or mpi4py: MPI must not be
# initialized before a fork); what a page imports beyond these, its child imports itself.
PRELOAD = ("numpy", "scipy.sparse", "torch", "matplotlib.pyplot", "h5py", "physinv", "physinv.invert",
           "physinv.discretize", "physinv.problems", "physinv.learn.data", "physinv.learn.trainer",
           "physinv.core.verification")


def _serve() -> int:
    """The page server: import :data:`PRELOAD`, then for each request line ``page<TAB>work<TAB>report<TAB>log``
    fork a child that runs :func:`_exec_page` in ``work`` (output to ``log``), and answer its exit code.

    Each page still runs in a process of its own, a copy of this one made before any page code ran, so it
    sees the same fresh state a new interpreter would, without paying the imports again.
    """
    import importlib
    import threading

    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOAD:
        importlib.import_module(name)
    from physinv.core.registry import load_problems

    load_problems()
    import torch

    native_threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    if (threading.active_count() > 1 or native_threads > 1 or torch.cuda.is_initialized()
            or "mpi4py" in sys.modules or not hasattr(os, "fork")):
        print("nofork", flush=True)  # forking would not be safe: the caller runs a fresh interpreter per page
        return 0
    print("ready", flush=True)
    for line in sys.stdin:
        page, work, report, log = line.rstrip("\n").split("\t")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into this loop
            code = 1
            try:
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # stdin is the request pipe: not the page's
                os.chdir(work)
                code = _exec_page(page, Path(report))
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    return 0


def _page_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}


class PageRunner:
    """Runs pages through one page server (:func:`_serve`); falls back to a fresh interpreter per page
    (:func:`run_page_subprocess`) where the server cannot fork."""

    def __init__(self):
        self.proc = None
        self.fork = True

    def _start(self) -> None:
        import select

        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, cwd=tempfile.gettempdir(), env=_page_env(), start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        answer = self.proc.stdout.readline().strip() if ready else ""
        if answer != "ready":
            self.close()
            self.fork = False

    def run(self, page: str, timeout: float = 300) -> dict:
        import select

        if self.fork and self.proc is None:
            self._start()
        if not self.fork:
            return run_page_subprocess(page, timeout)
        with tempfile.TemporaryDirectory(prefix="physinv-docs-") as tmp:
            work, report, log = Path(tmp) / "work", Path(tmp) / "report.json", Path(tmp) / "output.log"
            work.mkdir()
            t0 = time.perf_counter()
            self.proc.stdin.write(f"{page}\t{work}\t{report}\t{log}\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            answer = self.proc.stdout.readline().strip() if ready else ""
            seconds = time.perf_counter() - t0
            if not answer:
                self.close()  # timed out or died: the next page gets a new server
            result = json.loads(report.read_text()) if report.is_file() else \
                {"status": "failed", "blocks": [], "message": f"docs/{page}: the page did not finish "
                 f"({'timed out after ' + str(timeout) + ' s' if not ready else 'exit ' + (answer or '?')})"}
            result["seconds"] = seconds
            result["output"] = log.read_text(errors="replace")[-6000:] if log.is_file() else ""
        return result

    def close(self) -> None:
        if self.proc is not None:
            import signal

            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def _exec_page(page: str, report: Path) -> int:
    """In this process: execute the page's Python blocks in order in one namespace; write ``report``."""
    path = DOCS / page
    blocks = [b for b in extract(path) if b.kind == "python"]
    namespace = {"__name__": "__main__"}
    done, status, message = [], "ok", ""
    for block in blocks:
        print(f"--- {block.where}", flush=True)
        # the block's code at its own markdown line numbers, so tracebacks point into the page
        code = compile("\n" * block.line + block.code, str(path), "exec")
        t0 = time.perf_counter()
        try:
            exec(code, namespace)  # noqa: S102 - running the docs' code is the point
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            missing = _missing_extra(exc)
            if missing:
                status, message = "skipped", f"{block.where} needs the optional extra physinv[{missing}]: {exc}"
            else:
                status = "failed"
                message = f"{block.where} (python block at line {block.line}) raised:\n" + "".join(
                    traceback.format_exception(exc))
            break
        done.append([block.line, round(time.perf_counter() - t0, 3)])
    report.write_text(json.dumps({"status": status, "blocks": done, "message": message}))
    return 0 if status == "ok" else 1


def _missing_extra(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return EXTRA_MODULES.get(exc.name.split(".")[0])
    try:
        from physinv.core.errors import MissingExtraError
    except ImportError:
        return None
    if isinstance(exc, MissingExtraError):
        m = re.search(r"physinv\[(\w+)\]", str(exc))
        return m[1] if m else "?"
    return None


def check_commands(cmds: list[Command]) -> list[dict]:
    """Check every command in this process: ``{"page", "line", "text", "status", "message"}`` each, where
    ``status`` is ``run``, ``parsed``, ``unchecked`` (``message``: the reason), ``skipped`` (an optional extra
    the program imports is missing) or ``error``."""
    out = []
    for c in cmds:
        try:
            how, message = check_argv(c.argv), ""
        except Exception as exc:  # noqa: BLE001 - reported per command
            missing = _missing_extra(exc)
            how = "skipped" if missing else "error"
            message = f"{type(exc).__name__}: {exc}" + (f" (needs the optional extra physinv[{missing}])"
                                                         if missing else "")
        if how.startswith("unchecked"):
            how, message = "unchecked", how.partition(": ")[2]
        out.append({"page": c.block.page, "block": c.block.line, "line": c.line, "text": c.text, "status": how,
                    "message": message})
    return out


def check_commands_subprocess(timeout: float = 300) -> list[dict]:
    """:func:`check_commands` on every command of the docs, in a fresh interpreter (imports of case scripts and
    ``physinv`` runs stay out of the caller's process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory(prefix="physinv-docs-") as tmp:
        report = Path(tmp) / "commands.json"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--check-commands", "--report",
                               str(report)], cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if not report.is_file():
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise RuntimeError(f"the command checker died (exit {proc.returncode}):\n{tail}")
        return json.loads(report.read_text())


# --------------------------------------------------------------------------------------------------------------
# inventory


def inventory(blocks: list[Block] | None = None) -> dict:
    blocks = all_blocks() if blocks is None else blocks
    kinds = {}
    for b in blocks:
        kinds.setdefault(b.kind, []).append(b)
    cmds = [c for b in kinds.get("shell", []) for c in commands(b)]
    return {"blocks": blocks, "kinds": kinds, "commands": cmds,
            "python_pages": sorted({b.page for b in kinds.get("python", [])})}


def summary_line(n_python: int, n_pages: int, n_shell: int, n_parsed: int, n_run: int, n_text: int,
                 n_shell_checked: int | None = None, n_unchecked: int | None = None) -> str:
    extra = "" if n_shell_checked is None else f"{n_shell_checked} with every command checked; "
    tail = "" if n_unchecked is None else f", {n_unchecked} unchecked (listed with reasons)"
    return (f"docs code blocks: {n_python} python executed ({n_pages} pages), {n_shell} shell blocks "
            f"({extra}{n_parsed} commands parsed, {n_run} run{tail}), {n_text} text")


def command_summary(results: list[dict]) -> dict:
    """Counts of checked commands and of shell blocks whose every command was parsed or run."""
    blocks: dict[tuple, set] = {}
    for r in results:
        blocks.setdefault((r["page"], r["block"]), set()).add(r["status"])
    return {"parsed": sum(r["status"] in ("parsed", "run") for r in results),
            "run": sum(r["status"] == "run" for r in results),
            "unchecked": sum(r["status"] == "unchecked" for r in results),
            "skipped": [r for r in results if r["status"] == "skipped"],
            "errors": [r for r in results if r["status"] == "error"],
            "blocks_checked": sum(s <= {"parsed", "run"} for s in blocks.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Inventory (and with --run, check) the code blocks of docs/.")
    parser.add_argument("--run", action="store_true", help="execute the Python blocks and check every command")
    parser.add_argument("--commands-only", action="store_true", help="with --run: check the commands only")
    parser.add_argument("--exec-page", help=argparse.SUPPRESS)
    parser.add_argument("--check-commands", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-fork", action="store_true", help="a fresh interpreter per page (no page server)")
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exec_page:
        return _exec_page(args.exec_page, Path(args.report))
    if args.serve:
        return _serve()
    inv = inventory()
    if args.check_commands:
        Path(args.report).write_text(json.dumps(check_commands(inv["commands"])))
        return 0
    for b in inv["blocks"]:
        print(f"{b.where:45s} {b.tag or '(untagged)':8s} {b.kind}")
    bad = [b for b in inv["blocks"] if b.kind in ("untagged", "unknown")]
    print()
    for c in inv["commands"]:
        print(f"docs/{c.block.page}:{c.line}: {c.text}\n    -> {plan(c.argv)}")
    failures = 0
    if args.run:
        print()
        results = check_commands_subprocess()
        for r in results:
            if r["status"] == "error":
                failures += 1
                print(f"FAIL docs/{r['page']}:{r['line']}: {r['text']}\n    {r['message']}")
        counts = command_summary(results)
        executed = 0
        runner = PageRunner()
        runner.fork = not args.no_fork
        for page in [] if args.commands_only else inv["python_pages"]:
            r = runner.run(page)
            executed += len(r["blocks"])
            print(f"{page:32s} {r['status']:8s} {r['seconds']:6.1f} s  "
                  + " ".join(f"L{line}:{s:.1f}s" for line, s in r["blocks"]))
            if r["status"] != "ok":
                failures += 1
                print(r["message"])
        runner.close()
        print(summary_line(executed, len(inv["python_pages"]), len(inv["kinds"].get("shell", [])), counts["parsed"],
                           counts["run"], len(inv["kinds"].get("text", [])), counts["blocks_checked"],
                           counts["unchecked"]))
    else:
        print(f"{len(inv['kinds'].get('python', []))} python blocks on {len(inv['python_pages'])} pages, "
              f"{len(inv['kinds'].get('shell', []))} shell blocks ({len(inv['commands'])} commands), "
              f"{len(inv['kinds'].get('text', []))} text blocks; {len(bad)} untagged or unknown"
              + "".join(f"\n  {b.where} ({b.tag or 'untagged'})" for b in bad))
    return 1 if failures or bad else 0


if __name__ == "__main__":
    sys.exit(main())
