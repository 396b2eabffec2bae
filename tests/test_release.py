"""Registration as @candidate against a real MLflow store (sqlite): idempotent, forward only, locked."""

import multiprocessing

import pytest
import torch

from remi.pipeline.release import ALIAS, RegistryRefused, register_candidate

NAME = "unlearned"


def _tags(model_md5: str, requests: int) -> dict[str, str]:
    return {"model_md5": model_md5, "forget_set_md5": f"forget-{requests}", "erasure_requests": str(requests)}


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("release-test")
    with mlflow.start_run():
        model_uri = mlflow.pytorch.log_model(torch.nn.Linear(2, 2), name="model",
                                             input_example=torch.zeros(1, 2).numpy(),
                                             pip_requirements=["torch"]).model_uri
    return uri, model_uri, mlflow.MlflowClient(uri)


def _versions(client) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))


def test_registering_the_same_model_twice_reuses_its_version(store):
    uri, model_uri, client = store
    first = register_candidate(uri, model_uri, NAME, _tags("aaa", 1))
    # A re-run after a kill (or a reproduced model): same identity, no duplicate.
    assert register_candidate(uri, model_uri, NAME, _tags("aaa", 1)) == first
    assert _versions(client) == [first]
    assert client.get_model_version_by_alias(NAME, ALIAS).version == first


def test_a_version_left_without_alias_by_a_kill_gets_it_on_the_next_run(store):
    import mlflow

    uri, model_uri, client = store
    orphan = int(mlflow.register_model(model_uri, NAME, tags=_tags("bbb", 2)).version)  # killed before aliasing
    assert register_candidate(uri, model_uri, NAME, _tags("bbb", 2)) == orphan
    assert _versions(client) == [orphan]
    assert client.get_model_version_by_alias(NAME, ALIAS).version == orphan


def test_the_alias_never_moves_to_a_model_honouring_fewer_requests(store):
    uri, model_uri, client = store
    newer = register_candidate(uri, model_uri, NAME, _tags("ccc", 3))
    with pytest.raises(RegistryRefused, match="honours 3 erasure request"):
        register_candidate(uri, model_uri, NAME, _tags("ddd", 2))
    assert client.get_model_version_by_alias(NAME, ALIAS).version == newer
    assert _versions(client) == [newer]
    assert register_candidate(uri, model_uri, NAME, _tags("eee", 4)) > newer


def _register(uri: str, model_uri: str, model_md5: str, requests: int, results) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    try:
        results.put((requests, register_candidate(uri, model_uri, NAME, _tags(model_md5, requests))))
    except RegistryRefused:
        results.put((requests, None))


def test_two_concurrent_gates_end_on_the_model_honouring_more_requests(store):
    uri, model_uri, client = store
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_register, args=(uri, model_uri, md5, n, results))
               for md5, n in (("fff", 5), ("ggg", 4))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    outcome = dict(results.get(timeout=5) for _ in workers)
    candidate = client.get_model_version_by_alias(NAME, ALIAS)
    assert candidate.tags["erasure_requests"] == "5" and int(candidate.version) == outcome[5]
