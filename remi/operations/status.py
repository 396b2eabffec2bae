"""`remi request status`: one line per request, with its state, the model version that honours it,
the days since it was received and, once released, its erasure latency."""

from pathlib import Path

from remi.operations.ledger import LEDGER_PATH, now, read_events, request_states


def status_table(ledger: Path = LEDGER_PATH) -> str:
    states = request_states(read_events(ledger))
    if not states:
        return f"No request in {ledger} yet (`remi request add <envelope.json>`)."
    lines = [f"{'request':38s} {'state':12s} {'model version':>13s} {'days since received':>19s} "
             f"{'latency (days)':>14s}"]
    for state in sorted(states.values(), key=lambda s: s.received):
        age = (now() - state.received).total_seconds() / 86400
        latency = next((f"{e['detail']['latency_days']:.2f}" for e in state.events if e["event"] == "released"), "-")
        lines.append(f"{state.request_id[:38]:38s} {state.state:12s} {state.model_version:>13s} {age:19.2f} "
                     f"{latency:>14s}")
    return "\n".join(lines)
