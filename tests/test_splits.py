import json
import os
import subprocess

import pytest
import torch

from remi.data.erasure_requests import RequestError, read_requests
from remi.data.splits import SPLIT_NAMES, load_split, make_splits, retain_ids, select_forget
from remi.data.validation import validate_forget, validate_requests, validate_split_index
from remi.errors import UserError, ValidationFailed
from remi.params_schema import Forget, Splits
from remi.runtime.files import sweep_stale_temps
from remi.runtime.process_identity import start_ticks

SIZES = {"target_train": 300, "out": 100, "audit_holdout": 100, "test": 200, "shadow_pool": 400}


def _splits(num_samples: int, seed: int = 0, **sizes: int) -> dict[str, torch.Tensor]:
    return make_splits(num_samples, Splits(seed=seed, **(SIZES | sizes)))


def test_splits_are_disjoint_and_reproducible_from_the_seed():
    first, again, other = (_splits(2000, seed) for seed in (0, 0, 1))
    all_ids = torch.cat([first[name] for name in SPLIT_NAMES])
    assert len(all_ids.unique()) == len(all_ids) == sum(SIZES.values())
    assert all(torch.equal(first[n], again[n]) for n in SPLIT_NAMES)
    assert not torch.equal(first["target_train"], other["target_train"])


def test_splits_larger_than_the_dataset_are_rejected():
    with pytest.raises(UserError, match="dataset has 500"):
        _splits(500)


def test_forget_modes_select_inside_target_train():
    labels = torch.arange(2000) % 10
    target = _splits(2000)["target_train"]
    random_forget = select_forget(target, labels, Forget(mode="random", fraction=0.1, class_label=0, seed=3), [])
    assert len(random_forget) == 30 and torch.isin(random_forget, target).all()
    class_forget = select_forget(target, labels, Forget(mode="class", fraction=0.1, class_label=4, seed=0), [])
    assert (labels[class_forget] == 4).all()
    assert len(class_forget) == (labels[target] == 4).sum()
    assert len(retain_ids(target, class_forget)) == len(target) - len(class_forget)


def test_split_index_suite_passes_on_real_splits(fashion_mnist):
    splits = _splits(len(fashion_mnist), target_train=2000)
    validate_split_index(splits, fashion_mnist.labels, fashion_mnist.num_classes)


def test_split_index_suite_reports_overlapping_splits(fashion_mnist):
    splits = _splits(len(fashion_mnist), target_train=2000)
    splits["test"] = torch.cat([splits["test"], splits["target_train"][:5]])
    with pytest.raises(ValidationFailed, match="expect_column_values_to_be_unique"):
        validate_split_index(splits, fashion_mnist.labels, fashion_mnist.num_classes)


def _request(tmp_path, ids, digest="abc", name="r1"):
    (tmp_path / f"{name}.json").write_text(json.dumps({"request_id": name, "dataset": "fashion_mnist",
                                                       "dataset_digest": digest, "sample_ids": ids}))
    return read_requests(tmp_path)[0]


@pytest.mark.parametrize(("ids", "broken"), [
    ([5, 5], "compound_columns_to_be_unique"),          # duplicate
    ([5, 1999], "to_be_in_set"),                        # not a target_train member
    ([5, 10**7], "to_be_in_set"),                       # unknown sample
])
def test_bad_erasure_requests_fail_with_a_report(tmp_path, ids, broken):
    target = torch.arange(0, 1000)
    with pytest.raises(ValidationFailed) as error:
        validate_requests([_request(tmp_path, ids)], target, "fashion_mnist", "abc")
    assert broken in str(error.value)


def test_request_for_another_data_version_is_rejected(tmp_path):
    with pytest.raises(ValidationFailed, match="exact data version"):
        validate_requests([_request(tmp_path, [1, 2], digest="old")], torch.arange(10),
                          "fashion_mnist", "new")


@pytest.mark.parametrize(("text", "message"), [
    ('<<<<<<< HEAD\n{"sample_ids": [1]}\n', "is not the JSON file the prepare stage"),  # a merge's markers
    ('{"ids": [1, 2]}', "holds no list of sample IDs"),
    ('{"sample_ids": [1, -2]}', "holds no list of sample IDs"),  # -2 would pick the second-last sample
    ('{"sample_ids": [1, 2.5]}', "holds no list of sample IDs"),
    ('[1, 2]', "holds no list of sample IDs"),
])
def test_a_damaged_split_file_says_how_to_restore_it(tmp_path, text, message):
    split = tmp_path / "forget.json"
    split.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        load_split(split)
    assert "dvc repro --force prepare" in str(error.value)
    split.write_text('{"sample_ids": [0, 7]}')
    assert load_split(split).tolist() == [0, 7]
    with pytest.raises(UserError, match="not found"):
        load_split(tmp_path / "missing.json")


def test_forget_set_must_leave_a_retain_set():
    target = torch.arange(10)
    with pytest.raises(ValidationFailed, match="table_row_count"):
        validate_forget(target, target)


def test_every_entry_of_the_requests_directory_is_a_request_or_an_error(tmp_path):
    _request(tmp_path, [1, 2], name="a")
    (tmp_path / ".gitkeep").write_text("")
    assert [r.request_id for r in read_requests(tmp_path)] == ["a"]
    (tmp_path / "b.JSON").write_text("{}")
    (tmp_path / "c.json").write_text(json.dumps({"request_id": "c", "dataset": "fashion_mnist",
                                                 "dataset_digest": "abc", "sample_ids": ["13567", 12.0]}))
    with pytest.raises(RequestError) as error:
        read_requests(tmp_path)
    assert "b.JSON: not a request file" in str(error.value)
    assert "2 sample ID(s) are not JSON integers" in str(error.value)


def test_a_stopped_writes_leftover_is_named_for_what_it_is_not_a_file_to_rename(tmp_path):
    """A temp file that a killed intake left must be deleted, never renamed into a request."""
    _request(tmp_path, [1, 2], name="a")
    writer = subprocess.Popen(["sleep", "30"])
    try:
        leftover = tmp_path / f".b.json.{writer.pid}-{start_ticks(writer.pid)}.x1y2.tmp"
        leftover.write_text('{"request_id": "b", "sam')
        with pytest.raises(RequestError) as error:
            read_requests(tmp_path)
        assert f"process {writer.pid} is still writing" in str(error.value)
    finally:
        writer.kill()
        writer.wait()
    with pytest.raises(RequestError) as error:
        read_requests(tmp_path)
    assert f"left half-written by process {writer.pid}" in str(error.value)
    assert "must not be renamed" in str(error.value)
    leftover.unlink()
    assert [r.request_id for r in read_requests(tmp_path)] == ["a"]


def test_a_leftover_whose_pid_the_kernel_gave_to_another_process_is_still_a_leftover(tmp_path):
    """This process is alive, but it started later than the writer the name records."""
    leftover = tmp_path / f".b.json.{os.getpid()}-1.x1y2.tmp"
    leftover.write_text('{"request_id": "b", "sam')
    with pytest.raises(RequestError, match=f"left half-written by process {os.getpid()}"):
        read_requests(tmp_path)
    assert sweep_stale_temps((tmp_path,)) == [leftover] and not leftover.exists()
    ours = tmp_path / f".c.json.{os.getpid()}-{start_ticks(os.getpid())}.x1y2.tmp"
    ours.write_text("{")
    assert sweep_stale_temps((tmp_path,)) == [] and ours.exists()  # a writer still at work keeps its file
