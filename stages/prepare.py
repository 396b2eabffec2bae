"""Stage prepare: validated, disjoint sample-ID splits and the forget set, one file per consumer."""

from remi.data.datasets import load_dataset
from remi.data.erasure_requests import RequestError, read_requests
from remi.data.splits import SPLIT_NAMES, make_splits, select_forget, split_record
from remi.data.validation import validate_forget, validate_requests, validate_split_index
from remi.pipeline import tracking
from remi.pipeline.entry_point import stage_main
from remi.pipeline.layout import REQUESTS_DIR, metrics_path, run_record_path, split_path
from remi.pipeline.params import load_params
from remi.runtime.files import write_json


def main() -> None:
    params = load_params()
    # Requests are read first, whatever the mode: a request is applied or refused, never ignored.
    requests = read_requests(REQUESTS_DIR)
    if requests and params.forget.mode != "requests":
        raise RequestError(f"{REQUESTS_DIR} holds {len(requests)} erasure request(s) but forget.mode is "
                           f"{params.forget.mode!r}: set forget.mode: requests to apply them, "
                           "or move them out of the directory.")
    dataset = load_dataset(params.data.dataset, params.data.raw_dir)
    splits = make_splits(len(dataset), params.splits)
    validate_split_index(splits, dataset.labels, dataset.num_classes)
    if requests:
        validate_requests(requests, splits["target_train"], dataset.name, dataset.digest)
    requested_ids = [i for request in requests for i in request.sample_ids]
    forget = select_forget(splits["target_train"], dataset.labels, params.forget, requested_ids)
    validate_forget(forget, splits["target_train"])

    # Everything is validated before the first write: a rejected request leaves old outputs intact.
    sections = params.model_dump(include={"data", "splits", "forget"})
    with tracking.stage_run("prepare", "prepare", sections) as run:
        for name in SPLIT_NAMES:
            write_json(split_path(name), split_record(dataset.name, dataset.digest, name, splits[name]))
        # When each request was received (the audit reports how long they have waited), if the cycle wrote it.
        received = {r.request_id: r.received_time for r in requests if r.received_time}
        write_json(split_path("forget"), split_record(
            dataset.name, dataset.digest, "forget", forget, mode=params.forget.mode,
            requests=[request.request_id for request in requests],
            **({"received_times": received} if received else {})))
        tracking.write_run_record(run_record_path("prepare"), run)
        metrics = {f"{name}_count": len(ids) for name, ids in splits.items()} | {
            "forget_count": len(forget), "request_count": len(requests)}
        write_json(metrics_path("prepare"), metrics)
        tracking.log_metrics(metrics)
        for name in (*SPLIT_NAMES, "forget"):
            tracking.log_data_input(split_path(name), context=name)


if __name__ == "__main__":
    stage_main(main)
