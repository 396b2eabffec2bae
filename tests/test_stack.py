"""`remi stack`'s bookkeeping when a start failed part-way (the services themselves: test_cycle.py)."""

import json

from remi.operations import stack


def test_a_stack_whose_database_is_already_gone_still_stops_and_leaves_no_record(tmp_path):
    root = tmp_path / ".stack"
    root.mkdir()
    # A recorded stack whose cluster is gone (removed by hand, or recorded by an older start that failed).
    (root / "stack.json").write_text(json.dumps({"postgres_dir": str(tmp_path / "remi-postgres-gone"),
                                                 "postgres_port": 1}))
    stack.stop(root)
    assert not root.exists()
