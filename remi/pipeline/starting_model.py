"""The model the unlearning methods start from, and which forget samples it already honours.

By default the original target (models/target): every run unlearns the whole forget set. With
sequential unlearning (params `cycle.sequential`), `remi cycle` makes the model it released last the
starting model: models/base/release.json (git-tracked, a dependency of the stages that unlearn, so
moving it re-runs them) names that release and the sample IDs it honours, and models/base/weights
(tracked by DVC through models/base/weights.dvc) holds its files. The methods then forget only the
samples the release does not honour yet; retraining and the audit still use the cumulative forget set.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from remi.errors import UserError
from remi.networks import MODEL_FILE
from remi.networks.checkpoints import ArtifactError, load_model
from remi.pipeline.layout import MODELS_DIR, TARGET_DIR
from remi.runtime.files import file_md5, read_json, write_json

BASE_DIR = MODELS_DIR / "base"
BASE_MANIFEST = BASE_DIR / "release.json"
BASE_WEIGHTS_DIR = BASE_DIR / "weights"


@dataclass(frozen=True)
class StartingModel:
    registered_version: int | None = None  # None: the original target
    method: str | None = None  # the method whose model was released
    model_md5: str | None = None  # of its model file, checked before it is loaded
    honoured_ids: tuple[int, ...] = ()  # forget samples it already honours
    releases_since_retrain: int = 0  # incremental releases since a model trained from scratch

    @property
    def is_target(self) -> bool:
        return self.registered_version is None

    def describe(self) -> str:
        if self.is_target:
            return "the original target"
        return (f"released version {self.registered_version} ({self.method}), which honours "
                f"{len(self.honoured_ids)} forget samples")


TARGET = StartingModel()


def read_starting_model() -> StartingModel:
    """The manifest's starting model; the target when there is none."""
    if not BASE_MANIFEST.exists():
        return TARGET
    try:
        record = read_json(BASE_MANIFEST)
        return StartingModel(**{**record, "honoured_ids": tuple(record["honoured_ids"])})
    except (UserError, TypeError, KeyError) as error:
        raise UserError(f"{BASE_MANIFEST} is not a starting-model manifest ({error}); restore it with "
                        f"`git checkout {BASE_MANIFEST}`.") from error


def write_starting_model(start: StartingModel) -> None:
    write_json(BASE_MANIFEST, asdict(start) | {"honoured_ids": list(start.honoured_ids)})


def load_starting_model(device: torch.device) -> nn.Module:
    """The starting model's network, its weights checked against the manifest."""
    start = read_starting_model()
    if start.is_target:
        return load_model(TARGET_DIR, device)
    weights = BASE_WEIGHTS_DIR / MODEL_FILE
    if not weights.is_file() or file_md5(weights) != start.model_md5:
        raise ArtifactError(f"{weights} is not the released version {start.registered_version} that "
                            f"{BASE_MANIFEST} names: fetch it with `dvc pull {BASE_WEIGHTS_DIR}.dvc`.")
    return load_model(BASE_WEIGHTS_DIR, device)
