"""Stage check_params: validate the whole params.yaml before any stage that writes outputs runs.

DVC deletes a stage's outputs before running its command; a stage that found a bad value inside
its command would already have lost them. Every stage depends on this one (through prepare), so a
bad value stops `dvc repro` here, with every output intact. Its output never changes, so a valid
edit re-runs only the stages whose own params changed.
"""

from remi.pipeline.entry_point import run_entry_point
from remi.pipeline.layout import metrics_path
from remi.pipeline.params import load_params
from remi.runtime.files import write_json


def main() -> None:
    load_params()
    write_json(metrics_path("check_params"), {"params_valid": True})


if __name__ == "__main__":
    run_entry_point(main)
