"""The model the unlearning methods start from, and which forget samples it already honours.

By default the original target (models/target): every run unlearns the whole forget set. With
sequential unlearning (params `cycle.sequential`), `remi cycle` makes the model it released last the
starting model: models/base/release.json (git-tracked, a dependency of the stages that unlearn or
release, so moving it re-runs them) names that release, its model file's md5 and the sample IDs it
honours, and models/base/weights (tracked by DVC through models/base/weights.dvc) holds the file.
The methods other than retraining then start from it and forget only the samples it does not honour
yet; retraining, the scoring of forgetting quality, and the audit use the cumulative forget set.

The manifest also names the starting model's directory (`starting_model_dir`), which dvc.yaml loads
as a variable for the dependencies of the stages that read it: once a release is the starting model,
no stage reads the original target any more, so `remi purge --target` can delete it.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from remi.catalog import REFERENCE
from remi.errors import UserError
from remi.pipeline.layout import MODELS_DIR, TARGET_DIR
from remi.runtime.files import read_json, write_json

BASE_DIR = MODELS_DIR / "base"
BASE_MANIFEST = BASE_DIR / "release.json"
BASE_WEIGHTS_DIR = BASE_DIR / "weights"
DIRECTORY_KEY = "starting_model_dir"  # the variable dvc.yaml reads from the manifest


@dataclass(frozen=True)
class StartingModel:
    registered_version: int | None = None  # None: the original target
    method: str | None = None  # the method whose model was released
    model_md5: str | None = None  # of its model file, checked before it is loaded
    honoured_ids: tuple[int, ...] = ()  # forget samples it already honours
    releases_since_retrain: int = 0  # incremental releases since a model trained from scratch
    # The original target's test accuracy, measured by the audit of the cycle that first released:
    # the gate keeps limiting the cumulative drop from it, not the drop of one cycle.
    original_test_accuracy: float | None = None

    @property
    def is_target(self) -> bool:
        return self.registered_version is None

    @property
    def directory(self) -> Path:
        return TARGET_DIR if self.is_target else BASE_WEIGHTS_DIR

    def describe(self) -> str:
        if self.is_target:
            return "the original target"
        return (f"released version {self.registered_version} ({self.method}), which honours "
                f"{len(self.honoured_ids)} forget samples")


FROM_TARGET = StartingModel()


class _Manifest(BaseModel):
    """release.json as `write_starting_model` writes it: a hand edit or a bad merge that changes a type (`"1"` for
    1) is refused here, not deep in a stage."""

    model_config = ConfigDict(extra="forbid", strict=True)
    registered_version: int | None
    method: str | None
    model_md5: str | None
    honoured_ids: list[int]
    releases_since_retrain: int
    original_test_accuracy: float | None
    starting_model_dir: str


def read_starting_model() -> StartingModel:
    """The manifest's starting model; the target when there is none."""
    if not BASE_MANIFEST.exists():
        return FROM_TARGET
    try:
        record = _Manifest.model_validate(read_json(BASE_MANIFEST)).model_dump(exclude={DIRECTORY_KEY})
        return StartingModel(**{**record, "honoured_ids": tuple(record["honoured_ids"])})
    except ValidationError as error:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
    except (UserError, ValueError) as error:  # ValueError: e.g. a merge conflict's markers
        problem = str(error)
    raise UserError(f"{BASE_MANIFEST} is not a starting-model manifest ({problem}); restore it with "
                    f"`git checkout {BASE_MANIFEST}`.")


def starting_model_for(method: str) -> StartingModel:
    """Retraining always starts from scratch on the cumulative retain set: the starting model is only
    for the methods that modify a trained model."""
    return FROM_TARGET if method == REFERENCE else read_starting_model()


def write_starting_model(start: StartingModel, manifest: Path = BASE_MANIFEST) -> None:
    write_json(manifest, asdict(start) | {"honoured_ids": list(start.honoured_ids),
                                          DIRECTORY_KEY: start.directory.as_posix()})
