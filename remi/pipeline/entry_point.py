"""How an entry point (a stage or a tool) starts and fails: user errors as one readable message and
exit code 2; SIGTERM unwinds like an exception, so MLflow runs end (FAILED, not left RUNNING) and
temp files are removed."""

import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from remi.errors import UserError

USER_ERROR_EXIT = 2
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM (a scheduler's timeout, `kill`, a CI job cancelled)."""


def _on_sigterm(signum: int, frame: Any) -> NoReturn:
    raise Terminated(TERMINATED_EXIT)


def run_entry_point(main: Callable[[], Any]) -> None:
    """Run `main`; exit 2 with the message on a UserError, and exit with main's int result if any."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = main()
    except UserError as error:
        print(f"\nERROR ({type(error).__name__}): {error}\n", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    sys.exit(code if isinstance(code, int) else 0)


def stage_main(main: Callable[[], None]) -> None:
    from remi.pipeline.layout import OUTPUT_ROOTS
    from remi.pipeline.tracking import quiet_telemetry
    from remi.runtime.files import sweep_stale_temps

    quiet_telemetry()
    sweep_stale_temps(OUTPUT_ROOTS)  # a killed run's half-written files
    from remi.runtime.device import configure_threads

    def with_threads() -> None:  # inside the entry point, so a bad REMI_THREADS is one readable error
        configure_threads()
        main()

    run_entry_point(with_threads)
