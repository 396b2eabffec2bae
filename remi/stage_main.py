"""How a stage entry point starts and fails: user errors as one readable message, exit code 2."""

import os
import sys
from collections.abc import Callable

import torch

from remi.errors import UserError
from remi.tracking import quiet_telemetry


def stage_main(main: Callable[[], None]) -> None:
    quiet_telemetry()
    # One intra-op thread per core this process may use: small convs gain nothing from more.
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    try:
        main()
    except UserError as error:
        print(f"\nERROR ({type(error).__name__}): {error}\n", file=sys.stderr)
        sys.exit(2)
