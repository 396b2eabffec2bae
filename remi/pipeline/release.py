"""Registering the gate's model as @candidate: one locked step, idempotent, forward only.

- Idempotent: a version is identified by its model file's md5 and its forget set's md5; re-running
  the gate (after a kill between registering and aliasing, or a reproduced model) finds that
  version and points the alias at it instead of registering a duplicate.
- Forward only: the alias never moves to a model that leaves out any erasure request the current
  candidate honours (two pipelines sharing a store must not roll erasure back). Each version carries
  the ids it honours in its tags; a candidate registered before they were recorded (only their count)
  is compared by count.
- Locked: the check and the move happen under one lock, so two gates cannot interleave them.
  The lock is a local file (beside an sqlite store): gates on other hosts sharing a server are
  not serialised by it.
"""

import hashlib
import tempfile
from pathlib import Path

from remi.errors import UserError, first_few
from remi.networks import MODEL_FILE
from remi.pipeline import tracking
from remi.pipeline.layout import run_record_path, split_path, unlearned_dir
from remi.runtime.files import file_md5, read_json
from remi.runtime.locks import file_lock

ALIAS = "candidate"
LOCK_TIMEOUT_SECONDS = 300
IDENTITY_TAGS = ("model_md5", "forget_set_md5")
REQUESTS_TAG = "erasure_requests"
REQUEST_IDS_TAG = "erasure_request_ids"  # `erasure_request_ids.<n>`: the sorted ids, one per line, in parts
REQUEST_IDS_PART_CHARS = 90_000  # under MLflow's 100,000-character limit for a model version's tag value


class RegistryRefused(UserError):
    """Moving @candidate to this model would leave out erasure requests that the candidate honours."""


def release_tags(model_file: Path, forget_file: Path, method: str, identity: dict[str, str]) -> dict[str, str]:
    """A version's tags: its identity (model and forget-set md5), what it honours, where it came from."""
    forget = read_json(forget_file)
    return {"model_md5": file_md5(model_file), "forget_set_md5": file_md5(forget_file),
            **request_tags(forget.get("requests", [])),
            "dataset_digest": forget["dataset_digest"], "method": method,
            "git_commit": identity["git_commit"], "dvc_lock_md5": identity["dvc_lock_md5"]}


def request_tags(requests: list[str]) -> dict[str, str]:
    """The erasure requests a version honours, as tags: their count, their digest, and the ids themselves."""
    listed = "\n".join(requests)
    parts = [listed[start:start + REQUEST_IDS_PART_CHARS] for start in range(0, len(listed), REQUEST_IDS_PART_CHARS)]
    return {REQUESTS_TAG: str(len(requests)),
            "erasure_request_ids_sha256": hashlib.sha256(listed.encode()).hexdigest(),
            **{f"{REQUEST_IDS_TAG}.{number}": part for number, part in enumerate(parts or [""])}}


def honoured_requests(tags: dict[str, str]) -> set[str] | None:
    """The request ids a version's tags list; None for a version registered before ids were recorded."""
    prefix = f"{REQUEST_IDS_TAG}."
    numbers = sorted(int(key.removeprefix(prefix)) for key in tags if key.startswith(prefix))
    if not numbers:
        return None
    return set("".join(tags[f"{prefix}{number}"] for number in numbers).split("\n")) - {""}


def _left_out(current_tags: dict[str, str], tags: dict[str, str]) -> str | None:
    """What the new version would drop of the current candidate's requests, in words; None if nothing."""
    current, new = honoured_requests(current_tags), honoured_requests(tags)
    if current is not None and new is not None:
        dropped = sorted(current - new)
        return f"leaves out {len(dropped)} of them: {first_few(dropped)}" if dropped else None
    honoured = int(current_tags.get(REQUESTS_TAG, 0))
    return f"honours only {tags[REQUESTS_TAG]}" if honoured > int(tags[REQUESTS_TAG]) else None


def registry_lock_path(tracking_uri: str, registered_name: str) -> Path:
    key = hashlib.sha256(f"{tracking_uri}\n{registered_name}".encode()).hexdigest()[:16]
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).with_name(f".registry-{key}.lock")
    return Path(tempfile.gettempdir()) / f"remi-registry-{key}.lock"


def _version_with_identity(client, name: str, tags: dict[str, str]) -> int | None:
    query = " and ".join([f"name = '{name}'", *(f"tags.{key} = '{tags[key]}'" for key in IDENTITY_TAGS)])
    versions = client.search_model_versions(query)
    return min(int(v.version) for v in versions) if versions else None


class RegistryUnreadable(RuntimeError):
    """The registry could not say which version is @candidate (unreachable, refused, failing): the forward-only
    checks cannot run, so nothing may be released or applied until it can."""


# What the registry answers when there is no candidate yet: no such registered model, or no such alias on it; and,
# from a server with basic-auth, a denial, which is what it answers for a model that does not exist yet (it checks
# the permission on the model first). Read as no candidate, a denial stays closed: a user who may not read a model
# may not add a version to it either, so that gate's registration fails.
NO_CANDIDATE_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED")


def _current_candidate(client, name: str):
    """The @candidate version of `name`, None when there is none yet. Any other failure is raised: read as "no
    candidate", a timeout would let a model that drops released requests take the alias."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException as error:
        if error.error_code in NO_CANDIDATE_CODES:
            return None
        raise RegistryUnreadable(f"The model registry could not say which version of {name} is @{ALIAS} "
                                 f"({error.error_code}: {str(error)[:300]}); nothing was registered or released. "
                                 "Check the tracking server (MLFLOW_TRACKING_URI) and run again.") from error


def candidate_requests(tracking_uri: str, registered_name: str) -> tuple[int, set[str]] | None:
    """The @candidate version of `registered_name` and the request ids it honours; None if there is no candidate
    yet, or it was registered before ids were recorded."""
    import mlflow

    current = _current_candidate(mlflow.MlflowClient(tracking_uri), registered_name)
    honoured = honoured_requests(current.tags) if current else None
    return None if current is None or honoured is None else (int(current.version), honoured)


def register_candidate(tracking_uri: str, model_uri: str, registered_name: str, tags: dict[str, str]) -> int:
    """The version of `registered_name` now @candidate: found by identity tags, else registered."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    with file_lock(registry_lock_path(tracking_uri, registered_name), LOCK_TIMEOUT_SECONDS,
                   f"registering {registered_name}"):
        current = _current_candidate(client, registered_name)
        dropped = _left_out(current.tags, tags) if current else None
        if dropped:
            raise RegistryRefused(
                f"{registered_name}@{ALIAS} is version {current.version}, which honours "
                f"{current.tags.get(REQUESTS_TAG, 0)} erasure request(s); this model {dropped}. The alias only "
                "moves forward: restore every request the candidate honours under data/requests/ (`git log -- "
                "data/requests/` shows what went) and run again.")
        version = _version_with_identity(client, registered_name, tags)
        if version is None:
            version = int(mlflow.register_model(model_uri, registered_name, tags=tags).version)
        client.set_registered_model_alias(registered_name, ALIAS, str(version))
        return version


def release_method(method: str, registered_name: str, extra_tags: dict[str, str] | None = None) -> int:
    """Make the pipeline's `method` model (models/unlearned/<method>, logged by its unlearn run)
    `registered_name`@candidate; the version now @candidate."""
    record = tracking.read_run_record(f"unlearn/{method}")
    if record is None or "model_uri" not in record:
        raise UserError(f"{run_record_path(f'unlearn/{method}')} does not name the model that unlearn@{method} logged: "
                        f"run `remi run` (or `dvc repro unlearn@{method}`) before releasing it.")
    model_uri = record["model_uri"]
    tags = release_tags(unlearned_dir(method) / MODEL_FILE, split_path("forget"), method, tracking.code_identity())
    return register_candidate(tracking.tracking_uri(), model_uri, registered_name, tags | (extra_tags or {}))
