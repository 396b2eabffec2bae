"""`remi exposure`: an attack's AUC per group of the forget set, ranked by the target's score."""

import pytest
import torch

from remi.audit.exposure import exposure_by_group, read_scores
from remi.cli import main
from remi.errors import UserError


def _write_scores(path, leaky_top_quarter: bool):
    """100 forget and 400 holdout samples; the target scores forget sample i as i (so the last quarter is
    what it memorised most); "remi" scores the last quarter like members when `leaky_top_quarter`, and
    everything else, like "retrain", as the holdout."""
    generator = torch.Generator().manual_seed(0)
    lines = ["model,attack,part,sample_id,score"]
    lines += [f"target,online_lira,forget,{i},{i}" for i in range(100)]
    lines += [f"target,online_lira,audit_holdout,{1000 + i},{torch.rand(1, generator=generator).item() * 50}"
              for i in range(400)]
    for model in ("remi", "retrain"):
        for i in range(100):
            member = model == "remi" and leaky_top_quarter and i >= 75
            noise = torch.rand(1, generator=generator) if member else torch.randn(1, generator=generator)
            score = 10.0 + noise.item() if member else noise.item()
            lines.append(f"{model},online_lira,forget,{i},{score}")
        lines += [f"{model},online_lira,audit_holdout,{1000 + i},{torch.randn(1, generator=generator).item()}"
                  for i in range(400)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_leak_in_the_most_memorised_quarter_shows_in_that_group_only(tmp_path):
    scores = read_scores(_write_scores(tmp_path / "scores.csv", True))
    table = exposure_by_group(scores, "online_lira", 4)
    assert list(table) == ["target", "remi", "retrain"]
    assert table["remi"][3] == 1.0  # every leaked sample outscores every holdout sample
    assert all(abs(auc - 0.5) < 0.15 for auc in table["remi"][:3] + table["retrain"])
    # The whole set's AUC (one group) hides most of it: a quarter at 1.0 and the rest at chance.
    whole = exposure_by_group(scores, "online_lira", 1)["remi"][0]
    assert 0.55 < whole < 0.7


def test_the_command_prints_one_row_per_model_and_refuses_what_it_cannot_read(tmp_path, capsys):
    scores = _write_scores(tmp_path / "scores.csv", False)
    with pytest.raises(SystemExit) as exited:
        main(["exposure", "--scores", str(scores), "--groups", "2"])
    assert exited.value.code == 0
    output = capsys.readouterr().out
    assert "| model | group 1 | group 2 |" in output and output.count("\n| ") == 4  # header and 3 models
    with pytest.raises(UserError, match="remi run"):
        read_scores(tmp_path / "missing.csv")
    with pytest.raises(UserError, match="the audit scored: online_lira"):
        exposure_by_group(read_scores(scores), "lira", 4)
    with pytest.raises(UserError, match="choose 1 to 100"):
        exposure_by_group(read_scores(scores), "online_lira", 101)
    (tmp_path / "bad.csv").write_text("model,attack,part,sample_id,score\ntarget,online_lira,forget,x,1\n")
    with pytest.raises(UserError, match="line 2"):
        read_scores(tmp_path / "bad.csv")
