"""Per-example forgetting quality, after the NeurIPS 2023 machine-unlearning challenge.

For each forget sample, compare the distribution of one output statistic (the logit-scaled
true-class confidence) over M unlearned models with its distribution over M retrained models.
Every threshold on the statistic is an attack telling the two populations apart; its error rates
give a lower bound on the (epsilon, delta) privacy loss:

    epsilon(x) = max over thresholds of max(log(1 - delta - FPR) - log(FNR),
                                            log(1 - delta - FNR) - log(FPR))

M models cannot measure a rate below 1/M, so a rate of 0 counts as half a model, 1/(2M): epsilon is
then at most log(2M(1 - delta) - 1), reached by populations that no threshold confuses. Small M makes
the estimate coarse and noisy in both directions. Each sample
scores 2^-n with n = floor(epsilon / bin_width); the forgetting quality is their mean, in (0, 1],
higher = harder to tell from retraining. Retrain-vs-retrain (two disjoint sets of retrained models)
is the best achievable value under the same estimator.
"""

from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from typing import NamedTuple

import numpy as np
from torch import nn

from remi.attacks.signals import logit_scaled_confidence
from remi.catalog import REFERENCE
from remi.networks.training import predict_logits
from remi.networks.vectorised import in_blocks
from remi.params_schema import ForgettingQuality, Train
from remi.runtime.device import compute_device
from remi.runtime.executors import executor_for, map_in_order
from remi.runtime.progress import Progress
from remi.unlearning import UnlearningTask, unlearn
from remi.unlearning.base import Samples
from remi.unlearning.retrain import retrain_together


def per_example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float) -> np.ndarray:
    """epsilon per sample from statistics of shape (models, samples) for each population."""
    floor = rate_floor(min(len(unlearned), len(retrained)))
    epsilons = np.zeros(unlearned.shape[1])
    thresholds = np.concatenate([unlearned, retrained])  # every observed value is a threshold
    for index in range(unlearned.shape[1]):
        u, r = unlearned[:, index], retrained[:, index]
        t = np.unique(thresholds[:, index])[:, None]
        # Attack "unlearned if statistic > t": FPR on retrained, FNR on unlearned; and its mirror.
        best = 0.0
        for fpr, fnr in (((r > t).mean(1), (u <= t).mean(1)), ((r <= t).mean(1), (u > t).mean(1))):
            fpr, fnr = np.maximum(fpr, floor), np.maximum(fnr, floor)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.maximum(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
            values = values[np.isfinite(values)]
            if len(values):
                best = max(best, float(values.max()))
        epsilons[index] = best
    return epsilons


def rate_floor(models: int) -> float:
    """The smallest error rate `models` models per population can measure: half a model."""
    return 1 / (2 * models)


def largest_certifiable_epsilon(models: int, delta: float) -> float:
    """The resolution of the estimate: the epsilon of populations that no threshold confuses (both error
    rates at their floor), log(2M(1 - delta) - 1). No sample can score more, however distinguishable."""
    floor = rate_floor(models)
    return float(np.log(1 - delta - floor) - np.log(floor))


def forgetting_quality(epsilons: np.ndarray, bin_width: float) -> float:
    """Mean of 2^-floor(epsilon / bin_width): 1 when no sample is distinguishable at all."""
    return float(np.mean(2.0 ** -np.floor(epsilons / bin_width)))


def unlearned_seeds(settings: ForgettingQuality) -> list[int]:
    """Seeds of the M runs of each method: seed+2M..seed+3M-1, after the 2M retrainings' seeds. Sharing the
    reference population's seeds would correlate the two (a fine-tuning baseline re-draws retraining's batch
    order), and correlated populations look alike: the score would flatter the method."""
    count = settings.models
    return [settings.seed + 2 * count + i for i in range(count)]


class RetrainedPopulations(NamedTuple):
    reference: np.ndarray  # (M, samples): the population every method is compared with
    second: np.ndarray  # (M, samples): retrain-vs-retrain's other side
    executor: str  # where the retrainings ran (remi.runtime.executors), for the stage's run to record


def retrained_populations(task: UnlearningTask, settings: ForgettingQuality, forget: Samples,
                          progress: Progress | None = None) -> RetrainedPopulations:
    """Statistics of the 2M retrained models (seeds seed..seed+2M-1): the reference population, and a
    second one for retrain-vs-retrain. They train in blocks of `train_together` seeds, each block one
    vectorised computation, on the executor `executor_for` chooses (the progress lines name it)."""
    count = settings.models
    seeds = [settings.seed + i for i in range(2 * count)]
    blocks = in_blocks(seeds, settings.train_together)
    # Only what retraining reads, on the CPU: a block may run in a process with another device.
    retain = (task.retain[0].cpu(), task.retain[1].cpu())
    executor = executor_for(len(blocks), retain, forget)
    statistics: list[np.ndarray] = []
    with closing(map_in_order(retrained_statistics, blocks, executor, new_network=task.new_network, retain=retain,
                              train_params=task.train_params, forget=forget)) as per_block:
        for block, rows in zip(blocks, per_block, strict=True):
            statistics.extend(rows)
            for seed in block:
                if progress:
                    progress.advance(f"{REFERENCE}, seed {seed} ({executor})")
    retrained = np.stack(statistics)
    return RetrainedPopulations(retrained[:count], retrained[count:], executor)


def population_statistics(task: UnlearningTask, method: str, seeds: list[int], forget: Samples,
                          progress: Progress | None = None) -> np.ndarray:
    """Run `method` (an unlearning method; retraining's populations: retrained_populations) once per seed,
    here, from the same original model and sets; return the logit-scaled confidence of every resulting
    model on the forget samples (on the CPU): shape (len(seeds), samples)."""
    statistics = []
    for seed in seeds:
        seeded = replace(task, method_params=task.method_params.model_copy(update={"seed": seed}))
        statistics.append(model_statistics([unlearn(method, seeded)], forget)[0])
        if progress:
            progress.advance(f"{method}, seed {seed}")
    return np.stack(statistics)


def retrained_statistics(seeds: list[int], *, new_network: Callable[[], nn.Module], retain: Samples,
                         train_params: Train, forget: Samples) -> np.ndarray:
    """One block of retrainings on this process's device and each model's statistic on the forget
    samples, shape (len(seeds), samples). Module-level and keyword-only after the block, so an
    executor can run blocks in other processes."""
    return model_statistics(retrain_together(new_network, retain, train_params, seeds, compute_device()), forget)


def model_statistics(models: list[nn.Module], forget: Samples) -> np.ndarray:
    """Each model's logit-scaled true-class confidence on the forget samples: (models, samples)."""
    return np.stack([logit_scaled_confidence(predict_logits(model, forget[0]), forget[1]).double().numpy()
                     for model in models])
