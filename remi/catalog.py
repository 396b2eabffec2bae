"""Names of everything selectable in params.yaml, without importing the implementations.

params.py validates against these, so every stage can reject an unknown name before any training
without depending on (and re-running for every edit of) the modules that implement them. Each
registry checks at import time that it implements exactly these names.
"""

DATASETS = ("fashion_mnist", "mnist_5k", "letter", "cifar10")
IMAGE_DATASETS = ("fashion_mnist", "mnist_5k", "cifar10")  # samples of shape (C, H, W); letter's are vectors
NETWORKS = ("small_cnn", "mlp", "resnet18", "resnet9")
CONVOLUTIONAL_NETWORKS = ("small_cnn", "resnet18", "resnet9")  # they need images; mlp takes any input
REFERENCE = "retrain"  # the method every audit gap and forgetting-quality score is measured to
UNLEARNING_METHODS = ("retrain", "remi", "finetune", "neggrad_plus", "random_label", "salun", "scrub", "fisher",
                      "ssd")
LEAKAGE_ESTIMATORS = ("shadow_attack", "loss_threshold", "class_gaussian")  # what ReMI's MI term uses
SIGNAL_REFERENCES = ("population", "shadows")  # what ReMI measures each forget sample's signal from
STOP_TARGETS = ("fixed", "shadows", "neighbours")  # where ReMI's stop rule aims: target_auc, what unseen models
#   show, or what a nearest-neighbour model of the retain set shows
SIGNAL_MATCHES = ("gaussian", "quantiles")  # how ReMI's signal term compares forget's signals with out's: two
#   Gaussians (mean and variance) or the quantiles of the whole distribution, tails included
UNSEEN_MATCHES = ("distribution", "confidence")  # what ReMI's unseen-model term matches: the unseen model's
#   whole output distribution, or only its probability of the true class against the rest
PRECISIONS = ("float32", "bfloat16")  # what training computes in (bfloat16: mixed precision, where native)
AUDIT_ATTACKS = ("shadow_attack", "loss_attack", "mia_efficacy", "lira", "lira_fixed_variance", "rmia",
                 "online_lira")


def check_registry(kind: str, implemented: dict, names: tuple[str, ...]) -> None:
    if set(implemented) != set(names):
        raise RuntimeError(f"{kind} registry {sorted(implemented)} != remi/catalog.py {sorted(names)}")
