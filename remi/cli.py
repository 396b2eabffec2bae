"""The `remi` command: one front door to the pipeline and its tools.

    remi run [dvc repro arguments]      the whole pipeline (or the stages named), one MLflow parent run
    remi profile profiles/tiny.yaml     overlay a profile onto params.yaml
    remi seeds --seeds 0 1 2            the pipeline once per seed (dvc exp run), up to the audit
    remi compare [--seeds FILES]        comparison tables (one run, or mean +- std over seeds)
    remi ablation --seeds 0 1 2 [--variants NAME ...] [--independent-references | --online-references] [--ulira]
                  [--retrain-floor]
                                        ReMI's ablations and sweeps on the pipeline's artifacts (--list: the variants)
    remi fq-anatomy [--variants NAME ...] [--models M] [--online-references]
                                        why forgetting quality falls short: location vs spread
    remi exposure [--attack A] [--groups N]  an attack's AUC per group of the forget set, by the target's score
    remi benchmark networks|unlearning|sequential|threads|vectorised|precision|adam|startup|profile
                                        timing tools, the sequential drift (BENCHMARKS.md)
    remi summary                        the last run's result at a glance
    remi ui                             the MLflow UI on the local store
    remi reap-runs                      mark runs of killed processes KILLED
    remi request add|status|verify|cancel   erasure requests and their ledger
    remi cycle                          the re-unlearning job a scheduler runs (exit codes: docs/operations.md)
    remi stack start|stop               a local team stack: PostgreSQL + S3 (moto) + MLflow with basic auth
    remi purge [--target] [--apply]     delete superseded models and unused DVC objects (--target: the
                                        original target too); a dry run by default

Each subcommand imports what it needs only when it runs, so `remi --help` is instant. Errors in what
the user gave (params, requests, files) print one readable message and exit 2, as the stages do.
"""

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from remi.benchmarks.threads import WORKLOADS
from remi.pipeline.entry_point import run_entry_point
from remi.pipeline.layout import project_root

Handler = Callable[[argparse.Namespace], int | None]
ONLINE_REFERENCES_HELP = ("ReMI's per-example reference and unseen-model teachers from the online shadows, each on the "
                          "samples it never trained on (they saw much of the retain set; the shadows saw other data). "
                          "An experiment: online LiRA audits with the same models")


def _run(args: argparse.Namespace) -> int:
    from remi.pipeline.runner import run_pipeline

    return run_pipeline(args.dvc_arguments)


def _profile(args: argparse.Namespace) -> None:
    from remi.pipeline.params import apply_profile

    apply_profile(Path("params.yaml"), args.profile)
    print(f"params.yaml now has {args.profile} applied; `remi run` re-runs what it changed.")


def _seeds(args: argparse.Namespace) -> int:
    from remi.pipeline.seeds import run_seeds

    return run_seeds(args.seeds, args.output)


def _compare(args: argparse.Namespace) -> None:
    from remi.audit.comparison import compare

    compare(args.audit or Path("metrics/audit.json"), args.seeds, args.report or Path("reports/comparison.md"),
            args.metrics or Path("metrics/comparison.json"))


def _ablation(args: argparse.Namespace) -> None:
    if args.list:
        from remi.audit.ablation_variants import listing

        print(listing())
        return
    from remi.audit.ablation import run_ablation

    run_ablation(args.seeds, args.independent_references, args.variants, args.ulira, args.retrain_floor,
                 args.online_references)


def _fq_anatomy(args: argparse.Namespace) -> None:
    from remi.audit.forgetting_anatomy import run_forgetting_anatomy

    run_forgetting_anatomy(args.variants, args.models, args.online_references)


def _exposure(args: argparse.Namespace) -> None:
    from remi.audit.exposure import print_exposure
    from remi.pipeline.layout import MEMBERSHIP_SCORES

    print_exposure(args.scores or MEMBERSHIP_SCORES, args.attack, args.groups)


def _benchmark(args: argparse.Namespace) -> None:
    if args.what == "networks":
        from remi.benchmarks.networks import benchmark_networks

        benchmark_networks(args.samples, args.out)
    elif args.what == "unlearning":
        from remi.benchmarks.unlearning import benchmark_unlearning

        benchmark_unlearning(args.repeats)
    elif args.what == "threads":
        from remi.benchmarks.threads import benchmark_threads

        benchmark_threads(args.limit_seconds, args.out, tuple(args.workloads))
    elif args.what == "vectorised":
        from remi.benchmarks.reference_models import benchmark_vectorised

        benchmark_vectorised(args.models, args.epochs, args.out)
    elif args.what == "precision":
        from remi.benchmarks.precision import benchmark_precision

        benchmark_precision(args.repeats, args.out)
    elif args.what == "adam":
        from remi.benchmarks.optimizer import benchmark_adam

        benchmark_adam(args.steps, args.repeats, args.out)
    elif args.what == "startup":
        from remi.benchmarks.startup import benchmark_startup

        benchmark_startup(args.repeats, args.out)
    elif args.what == "profile":
        from remi.benchmarks.pipeline_profile import profile_last_run

        profile_last_run(args.out)
    else:
        from remi.benchmarks.sequential_drift import Plan, benchmark_sequential

        benchmark_sequential(Plan(args.cycles, args.requests, args.request_samples, args.compact_every, args.seed),
                             args.one_shot)


def _summary(args: argparse.Namespace) -> None:
    from remi.pipeline.summary import print_summary

    print_summary(args.markdown)


def _ui(args: argparse.Namespace) -> int:
    from remi.pipeline.tracking import serve_ui

    return serve_ui(args.host, args.port)


def _reap_runs(args: argparse.Namespace) -> None:
    from remi.pipeline.tracking import reap_orphaned_runs

    reaped = reap_orphaned_runs()
    print(f"Marked {len(reaped)} run(s) KILLED" + (f": {', '.join(reaped)}" if reaped else "."))


def _request(args: argparse.Namespace) -> int | None:
    from remi.operations import intake, ledger, status

    if args.action == "add":
        for path in args.files:
            print(f"Received {intake.add_request(path)} (from {path}); the next `remi cycle` applies it.")
    elif args.action == "status":
        print(status.status_table())
    elif args.action == "verify":
        print(f"{ledger.LEDGER_PATH}: {len(ledger.read_events())} events, the hash chain and every move are valid; "
              f"head {ledger.head_sha256()} (compare with the last cycle's MLflow tag ledger_head_sha256).")
    else:
        from remi.operations.cycle import cancel_requests

        return cancel_requests(args.ids)
    return None


def _cycle(args: argparse.Namespace) -> int:
    from remi.operations.cycle import run_cycle

    return run_cycle(args.wait, args.shared_state)


def _stack(args: argparse.Namespace) -> None:
    from remi.operations import stack

    if args.action == "start":
        state = stack.start()
        print(f"MLflow {state['mlflow_url']} (PostgreSQL store, artifacts in S3, basic auth), S3 "
              f"{state['s3_endpoint']}.\nUse it:  source {stack.STACK_DIR}/env   (MLflow as user "
              f"{state['ci_user']}); for DVC:  dvc remote add -d shared s3://{stack.BUCKET}/dvc && "
              f"dvc remote modify shared endpointurl {state['s3_endpoint']}")
    else:
        stack.stop()
        print(f"Stopped the stack and deleted its data ({stack.STACK_DIR}).")


def _purge(args: argparse.Namespace) -> int:
    from remi.operations.purge import purge

    return purge(args.apply, args.target)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 86_400:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in 0..86400")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (a count of samples, repeats, models, ...)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= 10**9:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {minimum} to 10^9")
        return value
    return parse


def _port(text: str) -> int:
    value = _count(1)(text)
    if value > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1..65535)")
    return value


def _loopback(text: str) -> str:
    """`remi ui`'s host: the local store has no authentication, so it is served on this machine only."""
    import ipaddress

    try:
        loopback = text == "localhost" or ipaddress.ip_address(text).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a loopback address (127.0.0.1, ::1, localhost): the local store has no authentication, "
            "so the UI is served on this machine only (reach it from another one through an SSH tunnel; a team "
            "shares an MLflow server with basic auth, docs/mlflow.md)")
    return text


def _path(text: str) -> Path:
    if not text.strip():  # Path("") is the current directory
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)


def _seed_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")


Command = Callable[[str, Handler, str], argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="remi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    _add_pipeline_commands(command)
    _add_operations_commands(command)
    return parser


def _add_pipeline_commands(command: Command) -> None:
    # Its other arguments (stage names, -f, ...) go to dvc repro unparsed: see main().
    command("run", _run, "run the pipeline (`dvc repro [ARGS]`) under one MLflow parent run")
    command("profile", _profile, "overlay a profile onto params.yaml").add_argument("profile", type=_path)
    seeds = command("seeds", _seeds, "run the pipeline once per seed with dvc exp run, up to the audit")
    _seed_list(seeds)
    seeds.add_argument("--output", type=_path, help="default: metrics/seeds/<dataset>.json")
    compare = command("compare", _compare, "comparison table of one run, or mean +- std over seed files")
    # Defaults are filled in by _compare: they are relative to the project, a given path to where it was typed.
    compare.add_argument("audit", nargs="?", type=_path, help="default: metrics/audit.json")
    compare.add_argument("--seeds", type=_path, nargs="+", help="metrics/seeds/<dataset>.json files")
    compare.add_argument("--report", type=_path, help="default: reports/comparison.md")
    compare.add_argument("--metrics", type=_path, help="default: metrics/comparison.json")
    ablation = command("ablation", _ablation, "ReMI's ablations and sweeps on the pipeline's artifacts")
    _seed_list(ablation)
    ablation.add_argument("--independent-references", action="store_true",
                          help="ReMI's per-example reference from half the shadows, the audit's LiRA/RMIA from the "
                               "other half (does a gap close only against the audit's own shadows?)")
    ablation.add_argument("--online-references", action="store_true", help=ONLINE_REFERENCES_HELP)
    ablation.add_argument("--ulira", action="store_true",
                          help="also U-LiRA's AUC against the retrained model and the test confidence shift "
                               "(the online shadows unlearn with each variant: about 8 ReMI runs more per cell)")
    ablation.add_argument("--variants", nargs="+", metavar="NAME",
                          help="only these variants, as the report names them (default: every one)")
    ablation.add_argument("--list", action="store_true",
                          help="print every variant, grouped by the question it answers, with its switches; run none")
    ablation.add_argument("--retrain-floor", action="store_true",
                          help="one more row: retraining with other seeds, audited alike (the gaps that a method "
                               "indistinguishable from retraining shows: the audit's resolution)")
    anatomy = command("fq-anatomy", _fq_anatomy, "forgetting quality taken apart: how far ReMI's runs sit from "
                                                 "retraining's, and how widely they scatter (after `remi run`)")
    anatomy.add_argument("--variants", nargs="+", metavar="NAME",
                         help="`remi ablation` variants to take apart (default: ReMI's params as they are)")
    anatomy.add_argument("--models", type=int, metavar="M",
                         help="models per population for this tool only (default: forgetting_quality.models); "
                              "more resolve the estimate finer and take 2M retrainings")
    anatomy.add_argument("--online-references", action="store_true", help=ONLINE_REFERENCES_HELP)
    exposure = command("exposure", _exposure, "where the exposure left sits: an attack's AUC per group of the "
                                              "forget set, ranked by the target's score (after `remi run`)")
    exposure.add_argument("--attack", default="online_lira", help="an audited attack (default online_lira)")
    exposure.add_argument("--groups", type=int, default=4, help="groups of the forget set (default 4: quarters)")
    exposure.add_argument("--scores", type=_path, help="default: reports/membership_scores.csv")
    benchmark = command("benchmark", _benchmark, "training seconds (and FLOP rate) per network, unlearning "
                                                 "seconds per method, and the other measurements in BENCHMARKS.md")
    benchmark.add_argument("what", choices=("networks", "unlearning", "sequential", "threads", "vectorised",
                                                   "precision", "adam", "startup", "profile"))
    benchmark.add_argument("--samples", type=_count(1), default=2048, help="networks: samples per timed epoch")
    benchmark.add_argument("--out", type=_path,
                           help="networks, threads, vectorised, precision, adam, startup, profile: also write the "
                                "timings to this JSON file")
    benchmark.add_argument("--repeats", type=_count(1), default=3,
                           help="unlearning, precision, adam, startup: repeats per method (startup: per import; "
                                "precision: per precision)")
    benchmark.add_argument("--steps", type=_count(1), default=200, help="adam: timed steps per repeat (default 200)")
    benchmark.add_argument("--limit-seconds", type=_seconds, default=120,
                           help="threads: stop a run still going after this long (default 120)")
    benchmark.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                           help="threads: which workloads to time under each setting (default both)")
    benchmark.add_argument("--models", type=_count(1), nargs="+", default=[8, 16],
                           help="vectorised: how many reference models to train each way (default 8 16)")
    benchmark.add_argument("--epochs", type=_count(1), default=5, help="vectorised: epochs of the recipe (default 5)")
    benchmark.add_argument("--cycles", type=_count(1), default=6, help="sequential: re-unlearning cycles")
    benchmark.add_argument("--requests", type=_count(1), default=2, help="sequential: new requests per cycle")
    benchmark.add_argument("--request-samples", type=_count(1), default=50, help="sequential: samples per request")
    benchmark.add_argument("--compact-every", type=_count(0), default=0,
                           help="sequential: cycle.compact_every (0: never)")
    benchmark.add_argument("--seed", type=int, default=0, help="sequential: which members are requested")
    benchmark.add_argument("--one-shot", action="store_true",
                           help="sequential: also unlearn the same requests from the target each cycle, to compare")
    summary = command("summary", _summary, "the last run's result: ReMI vs retraining, the gate, where the reports are")
    summary.add_argument("--markdown", action="store_true", help="only the results table, as in the README")
    ui = command("ui", _ui, "serve the MLflow UI on the local store")
    ui.add_argument("--host", type=_loopback, default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    ui.add_argument("--port", type=_port, default=5000)
    command("reap-runs", _reap_runs, "mark MLflow runs of this host's killed processes KILLED")


def _add_operations_commands(command: Command) -> None:
    request = command("request", _request, "erasure requests: add envelopes, show their states, verify the ledger")
    actions = request.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("add", help="receive request envelopes into data/inbox/").add_argument(
        "files", type=_path, nargs="+")
    actions.add_parser("status", help="every request: state, model version, days since received, latency")
    actions.add_parser("verify", help="check the ledger's hash chain and every request's moves")
    actions.add_parser("cancel", help="end pending requests").add_argument("ids", nargs="+")
    cycle = command("cycle", _cycle, "the re-unlearning job: ingest new requests, run, gate, record, push")
    cycle.add_argument("--wait", type=_seconds, default=0, help="seconds to wait for a running cycle (default 0)")
    cycle.add_argument("--shared-state", action="store_true",
                       help="refuse to run unless MLflow is a server and DVC has a default remote (a CI runner's "
                            "local store and cache go with it, and the ledger would name releases nobody can find)")
    purge = command("purge", _purge, "delete superseded models and unused DVC objects (a dry run unless --apply)")
    purge.add_argument("--apply", action="store_true", help="delete, instead of listing what would go")
    purge.add_argument("--target", action="store_true",
                       help="also the original target, once a release is the starting model (sequential)")
    command("stack", _stack, "a local team stack on 127.0.0.1: PostgreSQL, S3 (moto), MLflow with basic auth"
            ).add_argument("action", choices=("start", "stop"))


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if rest and args.command != "run":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.dvc_arguments = rest
    for name, value in vars(args).items():  # paths the user gave are relative to where they typed them
        if isinstance(value, Path):
            setattr(args, name, value.resolve())
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            setattr(args, name, [v.resolve() for v in value])
    os.chdir(project_root())  # like dvc: any directory inside the project will do
    run_entry_point(lambda: args.handler(args))
