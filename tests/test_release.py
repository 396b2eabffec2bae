"""Registration as @candidate against a real MLflow store (sqlite): idempotent, forward only, locked."""

import multiprocessing

import pytest
import torch

from remi.pipeline.release import (
    ALIAS,
    REQUEST_IDS_PART_CHARS,
    RegistryRefused,
    RegistryUnreadable,
    candidate_requests,
    honoured_requests,
    register_candidate,
    request_tags,
)

NAME = "unlearned"


def _tags(model_md5: str, requests: int | list[str]) -> dict[str, str]:
    """A version's identity and the requests it honours: `requests` ids, or r0, r1, ... as many as asked."""
    ids = requests if isinstance(requests, list) else [f"r{i}" for i in range(requests)]
    honoured = request_tags(ids)
    return {"model_md5": model_md5, "forget_set_md5": honoured["erasure_request_ids_sha256"]} | honoured


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


def test_the_alias_never_moves_to_a_model_that_drops_a_request_even_with_as_many(store):
    """A lost request plus a new one keeps the count: the ids decide."""
    uri, model_uri, client = store
    honouring_c = register_candidate(uri, model_uri, NAME, _tags("abc", ["A", "B", "C"]))
    with pytest.raises(RegistryRefused, match="leaves out 1 of them: C"):
        register_candidate(uri, model_uri, NAME, _tags("abd", ["A", "B", "D"]))
    assert client.get_model_version_by_alias(NAME, ALIAS).version == honouring_c
    assert register_candidate(uri, model_uri, NAME, _tags("abcd", ["A", "B", "C", "D"])) > honouring_c


def test_a_candidate_registered_before_ids_were_recorded_is_compared_by_count(store):
    import mlflow

    uri, model_uri, client = store
    legacy = mlflow.register_model(model_uri, NAME, tags={"model_md5": "old", "forget_set_md5": "old",
                                                          "erasure_requests": "3"}).version
    client.set_registered_model_alias(NAME, ALIAS, legacy)
    with pytest.raises(RegistryRefused, match="honours only 2"):
        register_candidate(uri, model_uri, NAME, _tags("two", 2))
    assert register_candidate(uri, model_uri, NAME, _tags("three", 3)) > int(legacy)


def test_thousands_of_request_ids_survive_the_store_in_parts(store):
    uri, model_uri, client = store
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(6000)]  # 222,000 characters: three parts
    tags = _tags("many", ids)
    assert len([key for key in tags if key.startswith("erasure_request_ids.")]) == -(-222_000 // REQUEST_IDS_PART_CHARS)
    version = register_candidate(uri, model_uri, NAME, tags)
    assert honoured_requests(client.get_model_version(NAME, str(version)).tags) == set(ids)
    with pytest.raises(RegistryRefused, match="leaves out 1 of them"):
        register_candidate(uri, model_uri, NAME, _tags("fewer", [*ids[1:], "new"]))


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


def test_a_registry_that_cannot_answer_stops_the_release_instead_of_reading_as_no_candidate(store, monkeypatch):
    """Read as "no candidate yet", a failing server would skip the forward-only check, and the alias could move to a
    model that drops released requests. A loopback port with nothing listening stands for a server that is down."""
    import socket

    uri, model_uri, client = store
    register_candidate(uri, model_uri, NAME, _tags("aaa", 2))
    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with pytest.raises(RegistryUnreadable, match=rf"could not say which version of {NAME} is @{ALIAS}"):
        candidate_requests(down, NAME)
    with pytest.raises(RegistryUnreadable):
        register_candidate(down, model_uri, NAME, _tags("bbb", 1))
    assert _versions(client) == [1]
    assert candidate_requests(uri, "never-registered") is None  # no such model: no candidate, not an error
    client.create_registered_model("no-alias-yet")
    assert candidate_requests(uri, "no-alias-yet") is None
