"""The ``physinv`` command.

```text
    physinv cases                      list the case studies
    physinv run NAME [case flags]      run cases/NAME.py (--quick, --out, --device, --seed, ...)
    physinv validate NAME [--json]     validate a simulator against references (e.g. poisson)
    physinv verify [NAME ...]          generic checks of registered simulators
    physinv data list                  list the registered data-set generators
    physinv data generate NAME --n N --out PATH [--seed S] [--workers K] [--chunk C]
                                       generate (or resume) a data set as chunked HDF5
    physinv data info PATH             a data file's settings and state; verifies its checksums
    physinv prior train DATA.h5 --field NAME --out DIR [--steps S --batch-size B --lr LR --width W
                        --levels L --ema-decay D --seed S --resume --overwrite --no-periodic]
                                       train a UNet diffusion prior on a field of a data set
    physinv prior sample DIR --count N [--steps S --seed S --out FILE.npz --reference DATA.h5]
                                       draw fields from a trained prior (and score them)
    physinv docs figures [--only GROUP] [--skip-cases] [--jobs N] [--list] [--out DIR]
                                       draw the documentation's figures again (docs/figures)
```
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import re
import runpy
import sys
from pathlib import Path

from physinv.core.errors import InvalidParameterError, PhysinvError, UnknownNameError
from physinv.core.registry import CASES, VALIDATIONS, register_case

PNG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.png")


def seed_argument(text: str) -> int:
    """Type of the ``--seed`` options: an integer in ``[0, 2**64)``, else argparse's usage error (exit 2)."""
    from physinv.core.seeding import check_seed  # imports torch: only when a seed is given

    try:
        return check_seed(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 and < 2**64; got {text!r}") from None


def cases_dir() -> Path:
    """``cases/`` of the source tree (the package is installed editable from it)."""
    return Path(__file__).resolve().parent.parent / "cases"


def register_source_cases() -> None:
    """Register every ``cases/*.py`` of the source tree (summary: the first line of its docstring)."""
    folder = cases_dir()
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = (ast.get_docstring(tree) or "").strip()
        register_case(path.stem, str(path), doc.splitlines()[0] if doc else "", case_docs_figures(tree, path))


def case_docs_figures(tree: ast.Module, path: Path) -> tuple[tuple[str, str], ...]:
    """The case's ``DOCS_FIGURES = {run output: docs/figures name}`` literal, read without importing it;
    both names must be plain PNG file names (no folder)."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not any(getattr(target, "id", None) == "DOCS_FIGURES" for target in targets):
            continue
        try:
            figures = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError):
            raise PhysinvError(f"{path}: DOCS_FIGURES must be a literal dict of file names") from None
        names = [*figures, *figures.values()] if isinstance(figures, dict) else [None]
        bad = [n for n in names if not (isinstance(n, str) and PNG_NAME.fullmatch(n))]
        if bad:
            raise PhysinvError(f"{path}: DOCS_FIGURES must map run output names to docs/figures names, both plain "
                               f"PNG file names (letters, digits, _ - .); got {bad[0]!r}")
        return tuple(figures.items())
    return ()


def list_cases() -> dict[str, str]:
    """Case name -> summary, for the source tree's cases and any a problem package registered."""
    register_source_cases()
    cases = {name: spec.summary for name, spec in CASES.items()}
    if not cases:
        raise PhysinvError(f"no case registered and no cases/ folder next to the package ({cases_dir()}); "
                           "install physinv from its source tree")
    return cases


def cmd_cases(_args, _rest) -> int:
    for name, summary in list_cases().items():
        print(f"{name:24s} {summary}")
    return 0


def cmd_run(args, rest) -> int:
    register_source_cases()
    path = CASES.get(args.name).path
    argv, sys.argv = sys.argv, [path, *rest]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = argv
    return 0


def cmd_validate(args, rest) -> int:
    return VALIDATIONS.get(args.name).main(rest)


def cmd_verify(args, _rest) -> int:
    from physinv.core import verification

    results = verification.verify_all(args.names or None)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(verification.format_results(results))
    return 0 if all(r["passed"] or r.get("skipped") for r in results.values()) else 1


def _param_value(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UnknownNameError(f"--param expects KEY=VALUE; got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def cmd_data(args, _rest) -> int:
    from physinv.learn import data

    for module in args.module:  # user modules that call register_dataset
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownNameError(f"--module {module!r} cannot be imported ({exc}); give an importable module "
                                   "(on PYTHONPATH) that registers data sets") from None
    if args.data_command == "list":
        for name, summary in data.list_datasets().items():
            print(f"{name:24s} {summary}")
        return 0
    if args.data_command == "info":
        return _data_info(args.path)
    params = dict(_param_value(p) for p in args.param)
    path = data.generate(args.name, args.n, args.out, seed=args.seed, workers=args.workers, chunk=args.chunk,
                         params=params, overwrite=args.overwrite, progress=not args.quiet, wait=args.wait)
    meta = data.read_metadata(path)
    print(f"{path}: {meta['n']} samples of {meta['generator']}, fields {', '.join(meta['fields'])}")
    return 0


def _data_info(path: str) -> int:
    """Print a data set's generator, parameters, seed, size and state; exit 1 when it is damaged or missing."""
    from physinv.learn import datafile

    try:
        state, meta = datafile.describe(path)
    except datafile.DataFileError as exc:
        print(f"physinv: damaged or unreadable: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {state}")
    if meta is not None:
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in meta["params"].items())
        print(f"  generator  {meta['generator']} ({meta['description']})\n  params     {params}\n"
              f"  seed       {meta['seed']}\n  samples    {meta['n']} in chunks of {meta['chunk']} "
              f"({meta['chunks_done']} of {meta['chunks_total']} chunks done)\n  fields     {', '.join(meta['fields'])}"
              f"\n  written    by physinv {meta['physinv_version']} at {meta['created']}\n"
              "  checksums  every attribute and chunk verified")
    return 0


def prior_fields(fields, name: str, path):
    """The field ``name`` of a data set as training fields ``(n, H, W)`` or ``(n, C, H, W)`` (else an error)."""
    from physinv.core.errors import ShapeMismatchError

    if fields.ndim not in (3, 4) or not fields.is_floating_point():
        raise ShapeMismatchError(
            f"field {name!r} of {path} has samples of shape {tuple(fields.shape[1:])} ({fields.dtype}); a "
            "diffusion prior needs real 2D fields (H, W) or multi-channel 2D fields (C, H, W) per sample")
    return fields


class _SamplerChoices:
    """``--method`` choices: :data:`physinv.learn.diffusion.sampling.SAMPLERS`, imported only when used
    (a check or the help), so building the parser does not import torch."""

    @staticmethod
    def _names() -> tuple[str, ...]:
        from physinv.learn.diffusion.sampling import SAMPLERS

        return SAMPLERS

    def __contains__(self, item) -> bool:
        return item in self._names()

    def __iter__(self):
        return iter(self._names())


def cmd_prior(args, _rest) -> int:
    if args.prior_command == "train":
        return _prior_train(args)
    return _prior_sample(args)


def cmd_docs(args, _rest) -> int:
    """``physinv docs figures``: draw the documentation's figures again (see physinv.casekit.docs_figures)."""
    from physinv.casekit import docs_figures

    register_source_cases()
    if args.list:
        print(docs_figures.list_groups())
        return 0
    folder = Path(args.out) if args.out else docs_figures.default_folder()
    written = docs_figures.make_figures(folder, args.only, skip_cases=args.skip_cases, jobs=args.jobs)
    print(f"{len(written)} figures in {folder} (manifest: {folder / docs_figures.MANIFEST})")
    return 0


def _prior_train(args) -> int:
    """Load the field, check every setting (before anything is written), train, report."""
    from physinv.learn import data
    from physinv.learn.diffusion.training import PriorConfig, train_prior

    loaded = data.load(args.data, [args.field])  # missing, damaged, incomplete file or unknown field: clear errors
    fields = prior_fields(loaded[args.field], args.field, args.data)
    config = PriorConfig(width=args.width, levels=args.levels, layers_per_block=args.layers_per_block,
                         periodic=not args.no_periodic, batch_size=args.batch_size, lr=args.lr,
                         ema_decay=args.ema_decay, seed=args.seed)
    meta = loaded.meta
    info = {"path": str(Path(args.data).resolve()), "field": args.field, "generator": meta["generator"],
            "params": meta["params"], "seed": meta["seed"], "n": meta["n"], "created": meta["created"]}
    run = train_prior(fields, args.out, args.steps, config, resume=args.resume, overwrite=args.overwrite,
                      progress=not args.no_progress, checkpoint_every=args.checkpoint_every, device=args.device,
                      data_info=info)
    if run.meta:
        shape = "x".join(map(str, run.meta["shape"]))
        print(f"{run.directory}: prior over {shape} fields {args.field!r} ({run.parameter_count} parameters), "
              f"{run.result.step} steps, loss {run.meta['training']['loss_first']:.4g} -> "
              f"{run.meta['training']['loss_last_100_mean']:.4g} (mean of the last 100 steps)")
    return 0


def _prior_sample(args) -> int:
    """Draw ``--count`` fields, optionally score them against reference fields, write them atomically."""
    import numpy as np
    import torch

    from physinv.core.device import resolve_device
    from physinv.core.io import atomic_write
    from physinv.learn import data
    from physinv.learn.diffusion import load_prior, sample_prior, spectrum_relative_error

    device = resolve_device(args.device)
    prior = load_prior(args.dir, device=device)
    reference = None
    if args.reference is not None:
        meta = json.loads((Path(args.dir) / "prior.json").read_text(encoding="utf-8"))
        name = args.field or (meta.get("data") or {}).get("field")
        if name is None:
            raise InvalidParameterError("--reference needs --field NAME (the prior does not record its field)")
        reference = prior_fields(data.load(args.reference, [name])[name], name, args.reference)
        if tuple(reference.shape[1:]) != tuple(prior.shape):
            from physinv.core.errors import ShapeMismatchError

            raise ShapeMismatchError(f"reference fields are {tuple(reference.shape[1:])}, the prior's "
                                     f"{tuple(prior.shape)}")
    samples = sample_prior(prior, args.count, steps=args.steps, seed=args.seed, method=args.method,
                           batch_size=args.batch_size, dtype=torch.float32, device=device,
                           progress=not args.no_progress).cpu().numpy()
    if not np.isfinite(samples).all():
        raise PhysinvError("the prior produced non-finite samples; the network is broken (retrain it)")
    out = Path(args.out) if args.out else Path(args.dir) / "samples.npz"
    extra = {}
    if reference is not None:
        extra["prior_spectrum_rel_err"] = np.float64(spectrum_relative_error(samples, reference))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, samples=samples, steps=args.steps, seed=args.seed, method=args.method,
                     sigma_min=prior.sigma_min, sigma_max=prior.sigma_max, **extra)

    atomic_write(out, write)
    print(f"{out}: {samples.shape[0]} samples of shape {tuple(samples.shape[1:])} ({args.steps} {args.method} steps)")
    if reference is not None:
        print(f"prior_spectrum_rel_err {float(extra['prior_spectrum_rel_err']):.4g} "
              f"(against {reference.shape[0]} fields of {args.reference})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="physinv", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.replace("```text\n", "").replace("```\n", ""))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cases", help="list the case studies")
    p.set_defaults(func=cmd_cases)
    p = sub.add_parser("run", help="run a case study; other flags go to the case (see physinv run NAME --help)",
                       add_help=False)
    p.add_argument("name", help="case name (physinv cases lists them)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the case's flags")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="validate a simulator against references (physinv validate poisson --help)",
                       add_help=False)
    p.add_argument("name", help="a registered validation (physinv validate --help lists them)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the validation's flags")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("verify", help="Taylor, dot-product and gradcheck tests of registered simulators")
    p.add_argument("names", nargs="*", help="simulator names (default: all registered)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("data", help="generate data sets for learned components (physinv data generate --help)")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    module_help = "import this module first (it registers data sets); repeatable"
    q = data_sub.add_parser("list", help="list the registered data-set generators")
    q.add_argument("--module", action="append", default=[], metavar="MODULE", help=module_help)
    q.set_defaults(func=cmd_data)
    q = data_sub.add_parser("generate", help="generate a data set (rerun the same command to resume)")
    q.add_argument("name", help="data-set generator (physinv data list)")
    q.add_argument("--n", type=int, required=True, help="number of samples")
    q.add_argument("--out", required=True, help="output HDF5 file")
    q.add_argument("--seed", type=seed_argument, default=0,
                   help="integer in [0, 2**64); sample i is drawn from default_rng([seed, i])")
    q.add_argument("--workers", type=int, default=1, help="worker processes (CPU cores)")
    q.add_argument("--chunk", type=int, default=64, help="samples per chunk (unit of resume and HDF5 chunking)")
    q.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="generator parameter, e.g. --param cells=32 (repeatable)")
    q.add_argument("--overwrite", action="store_true",
                   help="replace a physinv data set generated with other settings (once the new one is complete)")
    q.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another run generating into the same --out (default: refuse at once)")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--module", action="append", default=[], metavar="MODULE", help=module_help)
    q.set_defaults(func=cmd_data)
    q = data_sub.add_parser("info", help="a data file's generator, parameters, seed, size, state; checks its checksums")
    q.add_argument("path", help="the data file (--out of physinv data generate)")
    q.add_argument("--module", action="append", default=[], metavar="MODULE", help=module_help)
    q.set_defaults(func=cmd_data)
    _prior_parser(sub)
    _docs_parser(sub)
    return parser


def _docs_parser(sub) -> None:
    p = sub.add_parser("docs", help="the documentation site's figures (physinv docs figures --help)")
    docs_sub = p.add_subparsers(dest="docs_command", required=True, metavar="COMMAND")
    q = docs_sub.add_parser("figures", help="draw the figures of docs/figures again from the code",
                            description="Draw every figure the documentation shows: problem figures in seconds, "
                                        "case figures by each case's --quick run (minutes each).")
    q.add_argument("--only", action="append", default=[], metavar="GROUP",
                   help="draw only this group (repeatable; --list shows the groups)")
    q.add_argument("--skip-cases", action="store_true", help="only the problem figures, no case runs")
    q.add_argument("--jobs", type=int, default=1, help="case runs at once, sharing the CPU cores (default 1)")
    q.add_argument("--list", action="store_true", help="list the groups and their figures, draw nothing")
    q.add_argument("--out", default=None, help="folder (default: docs/figures of the source tree)")
    q.set_defaults(func=cmd_docs)


def _prior_parser(sub) -> None:
    p = sub.add_parser("prior", help="train and sample UNet diffusion priors (physinv prior train --help)")
    prior_sub = p.add_subparsers(dest="prior_command", required=True)
    q = prior_sub.add_parser("train", help="train a diffusion prior on one field of a data set",
                             description="Train a UNet diffusion prior (DDPM epsilon loss, EMA weights) on the field "
                                         "NAME of a physinv data set; rerun with --resume to continue.")
    q.add_argument("data", help="data set (physinv data generate ... --out DATA.h5)")
    q.add_argument("--field", required=True, help="the field to learn (physinv data info DATA.h5 lists them)")
    q.add_argument("--out", required=True, help="prior directory: checkpoint.pt, prior.json, training curve")
    q.add_argument("--steps", type=int, default=2000, help="optimizer steps in all (default 2000)")
    q.add_argument("--batch-size", type=int, default=32, help="fields per step (default 32)")
    q.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate, constant (default 2e-4)")
    q.add_argument("--width", type=int, default=32, help="UNet channels at full resolution, a multiple of 8")
    q.add_argument("--levels", type=int, default=3, help="UNet resolution levels; H, W divisible by 2**(levels-1)")
    q.add_argument("--layers-per-block", type=int, default=1, help="residual blocks per level (default 1)")
    q.add_argument("--ema-decay", type=float, default=0.999, help="decay of the weights' moving average")
    q.add_argument("--seed", type=seed_argument, default=0, help="initialization and batch seed")
    q.add_argument("--no-periodic", action="store_true", help="zero padding (default: circular, periodic fields)")
    q.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    q.add_argument("--overwrite", action="store_true", help="start afresh over a prior already in --out")
    q.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    q.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_prior)
    q = prior_sub.add_parser("sample", help="draw fields from a trained prior",
                             description="Draw fields from the prior trained in DIR (probability-flow ODE, Heun "
                                         "steps by default), write them to an .npz (array 'samples').")
    q.add_argument("dir", help="prior directory (--out of physinv prior train)")
    q.add_argument("--count", type=int, required=True, help="number of fields")
    q.add_argument("--steps", type=int, default=50, help="sampler steps (default 50)")
    q.add_argument("--seed", type=seed_argument, default=0, help="sampling seed")
    q.add_argument("--method", default="heun", choices=_SamplerChoices(), metavar="METHOD",
                   help="step rule: %(choices)s (default %(default)s)")
    q.add_argument("--batch-size", type=int, default=64, help="fields sampled at once (default 64)")
    q.add_argument("--out", default=None, help="output .npz (default DIR/samples.npz)")
    q.add_argument("--reference", default=None, metavar="DATA.h5",
                   help="score the samples: prior_spectrum_rel_err against the fields of this data set")
    q.add_argument("--field", default=None, help="field of --reference (default: the one the prior learned)")
    q.add_argument("--device", default="auto", help="auto|cpu|cuda (default auto)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_prior)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["run"], ["validate"]) and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        names = list_cases() if argv[0] == "run" else VALIDATIONS.names()
        print(f"usage: physinv {argv[0]} NAME [flags of NAME; physinv {argv[0]} NAME --help lists them]\n")
        print("NAME is one of: " + ", ".join(names))
        return 0
    args = parser.parse_args(argv)  # unknown flags: usage error, exit 2; run and validate pass theirs on
    try:
        return args.func(args, getattr(args, "rest", []))
    except PhysinvError as exc:
        print(f"physinv: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
