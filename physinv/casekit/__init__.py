"""The shared skeleton of the case studies (``cases/*.py`` stay thin).

* :mod:`~physinv.casekit.command`: the common command line and ``main``;
* :mod:`~physinv.casekit.setup`: settings tables (quick / full / smoke), seeding, device, data sets from
  the registry, noise streams;
* :mod:`~physinv.casekit.learning`: training the compared networks alike, their metrics and curves;
* :mod:`~physinv.casekit.report`: the side-by-side methods table, the checked claims, the outputs;
* :mod:`~physinv.casekit.outputs`: the output folder, checked before any work and filled as one set.

The output folder ``DIR`` (``--out``) holds the outputs of exactly one complete run::

    DIR/run.json           the run: run_id, case, seed, command, physinv version, start and end, outputs
    DIR/metrics.json       flat: metric name -> number
    DIR/report.md          the methods side by side; its second line names the run id and seed
    DIR/*.png              figures; each carries the run id in its PNG text chunk ``physinv-run``
    DIR/...                any other output a case writes (``sweep.json``), listed in run.json
    DIR/data/, DIR/models/ reused across runs, written in place (atomically): data sets
                           (regenerated only for other settings), trained models, training checkpoints
                           (``--resume``); ``poisson_dcdm`` keeps train_data.pt and dcdm.pt in DIR

A run writes its outputs into ``DIR/.run-RUNID.partial/``; only when it succeeds are they stamped
with the run id and moved into ``DIR`` together (SIGINT and SIGTERM wait for the moves), and the
outputs of the earlier run that this one did not write again (those its run.json lists) are removed.
Nothing else in ``DIR`` is touched.  A run that fails or is interrupted (Ctrl-C: exit code 130)
removes its staging folder and leaves ``DIR`` as it was; one killed outright (SIGKILL) leaves its
hidden ``.run-RUNID.partial/`` folder, which may be deleted.  A ``--out`` that is a file, or that
cannot be created or written, is refused before any work (exit code 2, one line ``physinv: error: ...``).

Importing the package selects matplotlib's Agg backend (through :mod:`physinv.viz.figures`), so case
scripts import pyplot freely.
"""

from physinv.casekit.command import add_training_flags, case_main, case_parser
from physinv.casekit.learning import inference_times, model_builder, plot_training, train_methods, training_metrics
from physinv.casekit.report import checks_table, command_line, methods_table, write_results
from physinv.casekit.setup import NOISE_STREAMS, CaseRun, DataSet, make_dataset, noise_tag, start_case, stream_seed

__all__ = [
    "NOISE_STREAMS", "CaseRun", "DataSet", "add_training_flags", "case_main", "case_parser", "checks_table",
    "command_line", "inference_times", "make_dataset", "methods_table", "model_builder", "noise_tag",
    "plot_training", "start_case", "stream_seed",
    "train_methods", "training_metrics", "write_results",
]
