"""Great Expectations suites for the split index and the erasure requests.

Each check builds a small DataFrame, runs a suite on it in an ephemeral GX context and raises
ValidationFailed with a readable report listing every broken expectation.
"""

from typing import Any

import pandas as pd
import torch

from remi.data.erasure_requests import ErasureRequest
from remi.data.splits import SPLIT_NAMES
from remi.errors import ValidationFailed

MAX_EXAMPLES = 10  # offending values shown per broken expectation


def _gx():
    # Lazy: importing great_expectations costs ~3 s, which only prepare should pay.
    import great_expectations as gx

    return gx


def run_suite(name: str, frame: pd.DataFrame, expectations: list[Any]) -> None:
    """Validate `frame` against `expectations`; raise ValidationFailed with a report if any break."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas(name).add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(name).get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite, result_format={"result_format": "SUMMARY",
                                                  "partial_unexpected_count": MAX_EXAMPLES})
    if not result.success:
        raise ValidationFailed(_report(name, result))


def _report(name: str, result: Any) -> str:
    lines = [f"Great Expectations suite `{name}` failed:"]
    for check in result.results:
        if check.success:
            continue
        config = check.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id", "value_set")}
        outcome = check.result or {}
        detail = ""
        if "unexpected_count" in outcome:
            detail = (f": {outcome['unexpected_count']} unexpected value(s), e.g. "
                      f"{outcome.get('partial_unexpected_list', [])[:MAX_EXAMPLES]}")
        elif "observed_value" in outcome:
            detail = f": observed {outcome['observed_value']}"
        meaning = (config.meta or {}).get("meaning", "")
        lines.append(f"  - {config.type} {kwargs}{detail}" + (f"\n      {meaning}" if meaning else ""))
    return "\n".join(lines)


def _expect(kind: str, meaning: str, **kwargs: Any) -> Any:
    return getattr(_gx().expectations, kind)(meta={"meaning": meaning}, **kwargs)


def validate_split_index(splits: dict[str, torch.Tensor], labels: torch.Tensor,
                         num_classes: int) -> None:
    """IDs unique across splits (so the splits are disjoint), known, labels in range, classes balanced."""
    frame = pd.DataFrame({
        "sample_id": torch.cat([splits[n] for n in SPLIT_NAMES]).numpy(),
        "split": [n for n in SPLIT_NAMES for _ in range(len(splits[n]))],
    })
    frame["label"] = labels[torch.tensor(frame["sample_id"].to_numpy())].numpy()
    run_suite("split_index", frame, [
        _expect("ExpectColumnValuesToBeUnique", "a sample may be in one split only", column="sample_id"),
        _expect("ExpectColumnValuesToBeBetween", "IDs index the dataset", column="sample_id",
                min_value=0, max_value=len(labels) - 1),
        _expect("ExpectColumnValuesToBeBetween", "labels are class indices", column="label",
                min_value=0, max_value=num_classes - 1),
        _expect("ExpectColumnValuesToBeInSet", "only the known splits", column="split",
                value_set=list(SPLIT_NAMES)),
    ])
    shares = (frame.groupby("split")["label"].value_counts(normalize=True)
              .rename("share").reset_index())
    uniform = 1 / num_classes
    run_suite("class_balance", shares, [
        _expect("ExpectColumnValuesToBeBetween",
                "each class holds between half and 1.5x its uniform share of every split",
                column="share", min_value=0.5 * uniform, max_value=1.5 * uniform),
        _expect("ExpectTableRowCountToEqual", "every class appears in every split",
                value=num_classes * len(SPLIT_NAMES)),
    ])


def validate_requests(requests: list[ErasureRequest], target_train: torch.Tensor,
                      dataset: str, digest: str) -> None:
    """Every requested ID (already a JSON integer, see erasure_requests) is unique within its
    request and a target_train member, for this dataset and data version."""
    rows = [(r.path.name, r.dataset, r.dataset_digest, i) for r in requests for i in r.sample_ids]
    frame = pd.DataFrame(rows, columns=["request", "dataset", "dataset_digest", "sample_id"])
    run_suite("erasure_requests", frame, [
        _expect("ExpectCompoundColumnsToBeUnique", "a request names each sample once",
                column_list=["request", "sample_id"]),
        _expect("ExpectColumnValuesToBeInSet",
                "requests can only name members of the target's training set (target_train)",
                column="sample_id", value_set=target_train.tolist()),
        _expect("ExpectColumnValuesToBeInSet", "requests are for this dataset", column="dataset",
                value_set=[dataset]),
        _expect("ExpectColumnValuesToBeInSet",
                "requests name samples of this exact data version (see dataset_digest in "
                "data/splits/target_train.json)", column="dataset_digest", value_set=[digest]),
    ])


def validate_forget(forget: torch.Tensor, target_train: torch.Tensor) -> None:
    """The forget set is non-empty, unique, inside target_train, and leaves a retain set."""
    frame = pd.DataFrame({"sample_id": forget.numpy()})
    run_suite("forget_set", frame, [
        _expect("ExpectTableRowCountToBeBetween", "forget at least one sample, and not all of them",
                min_value=1, max_value=len(target_train) - 1),
        _expect("ExpectColumnValuesToBeUnique", "each sample once", column="sample_id"),
        _expect("ExpectColumnValuesToBeInSet", "the forget set lies inside target_train",
                column="sample_id", value_set=target_train.tolist()),
    ])
