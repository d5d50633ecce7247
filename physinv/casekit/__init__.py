"""The shared skeleton of the case studies (``cases/*.py`` stay thin).

* :mod:`~physinv.casekit.command`: the common command line and ``main``;
* :mod:`~physinv.casekit.setup`: settings tables (quick / full / smoke), seeding, device, data sets from
  the registry, noise streams;
* :mod:`~physinv.casekit.learning`: training the compared networks alike, their metrics and curves;
* :mod:`~physinv.casekit.report`: the side-by-side methods table, the checked claims, the outputs.

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
