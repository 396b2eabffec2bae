"""train.precision: bfloat16 mixed precision trains as well as float32, keeps float32 weights, and a device
without native bfloat16 is refused before any training."""

import pytest
import torch
from pydantic import ValidationError

from remi.networks.training import accuracy, predict_logits, train_classifier
from remi.networks.vectorised import train_classifiers
from remi.params_schema import Train
from remi.runtime import precision
from remi.runtime.precision import PrecisionError, has_native_bfloat16
from tests.conftest import small_cnns

FLOAT32 = Train(epochs=4, batch_size=64, max_lr=0.003, seed=0)
BFLOAT16 = FLOAT32.model_copy(update={"precision": "bfloat16"})


@pytest.fixture
def bfloat16_allowed(monkeypatch):
    """Where the CPU has no native bfloat16 (Zen 3, say), torch still computes it, in software: the same code
    path, only slower, which is why train.precision refuses it there (the refusal is tested below)."""
    if not has_native_bfloat16(torch.device("cpu")):
        monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: True)


@pytest.mark.usefixtures("bfloat16_allowed")
def test_bfloat16_trains_as_well_as_float32_and_keeps_float32_weights(fashion_mnist, params):
    train, test = torch.arange(2000), torch.arange(2000, 3000)
    x, y = fashion_mnist.subset(train)
    test_x, test_y = fashion_mnist.subset(test)
    full = train_classifier(small_cnns(fashion_mnist, params, [0])[0], x, y, FLOAT32, 0)
    mixed = train_classifier(small_cnns(fashion_mnist, params, [0])[0], x, y, BFLOAT16, 0)
    assert all(w.dtype == torch.float32 for w in mixed.parameters())
    # Same seeds, other rounding: really trained in bfloat16, not silently in float32.
    assert max((a - b).abs().max().item() for a, b in zip(full.parameters(), mixed.parameters(), strict=True)) > 1e-3
    full_accuracy = accuracy(predict_logits(full, test_x), test_y)
    mixed_accuracy = accuracy(predict_logits(mixed, test_x), test_y)
    assert full_accuracy > 0.7 and abs(mixed_accuracy - full_accuracy) < 0.03


@pytest.mark.usefixtures("bfloat16_allowed")
def test_vectorised_training_runs_in_bfloat16_too(fashion_mnist, params):
    data = [fashion_mnist.subset(torch.arange(k * 500, (k + 1) * 500)) for k in range(2)]
    full = train_classifiers(small_cnns(fashion_mnist, params, [1, 2]), data, FLOAT32, [1, 2])
    mixed = train_classifiers(small_cnns(fashion_mnist, params, [1, 2]), data, BFLOAT16, [1, 2])
    probe = fashion_mnist.inputs[-500:]
    for a, b in zip(full, mixed, strict=True):
        assert not torch.equal(predict_logits(a, probe), predict_logits(b, probe))
        assert (predict_logits(a, probe).argmax(1) == predict_logits(b, probe).argmax(1)).float().mean() > 0.9


def test_a_device_without_native_bfloat16_is_refused_before_training(fashion_mnist, params, monkeypatch):
    monkeypatch.setattr(precision, "has_native_bfloat16", lambda device: False)
    model = small_cnns(fashion_mnist, params, [0])[0]
    before = [w.clone() for w in model.parameters()]
    with pytest.raises(PrecisionError, match=r"set train\.precision to float32"):
        train_classifier(model, *fashion_mnist.subset(torch.arange(100)), BFLOAT16, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_only_the_bfloat16_cpu_flags_count_as_native(tmp_path, monkeypatch):
    cpu_info = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "CPU_INFO", cpu_info)
    cpu_info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512dq\n")
    assert not has_native_bfloat16(torch.device("cpu"))  # AVX-512 alone: software conversion
    for flag in ("avx512_bf16", "amx_bf16"):
        cpu_info.write_text(f"processor\t: 0\nflags\t\t: fpu avx512f {flag}\n")
        assert has_native_bfloat16(torch.device("cpu"))


def test_an_unknown_precision_is_refused_with_the_known_ones():
    with pytest.raises(ValidationError, match="unknown precision 'float16'; known: float32, bfloat16"):
        Train(epochs=1, batch_size=1, max_lr=0.1, seed=0, precision="float16")
