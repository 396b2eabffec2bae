import numpy as np

from remi.audit.forgetting_quality import forgetting_quality, largest_certifiable_epsilon, per_example_epsilon


def test_identical_populations_score_well_above_separated_ones():
    rng = np.random.default_rng(0)
    same_a, same_b = rng.normal(0, 1, (16, 300)), rng.normal(0, 1, (16, 300))
    far = rng.normal(8, 1, (16, 300))
    eps_same = per_example_epsilon(same_a, same_b, delta=0.01)
    eps_far = per_example_epsilon(far, same_b, delta=0.01)
    # No threshold confuses the separated populations: every sample gets the largest certifiable epsilon.
    assert np.allclose(eps_far, np.log(2 * 16 * 0.99 - 1))
    assert np.allclose(eps_far, largest_certifiable_epsilon(16, delta=0.01))  # what the report states
    assert (eps_same < eps_far).mean() > 0.95
    assert forgetting_quality(eps_same, 0.5) > 3 * forgetting_quality(eps_far, 0.5)


def test_epsilon_matches_hand_computed_cases():
    # Two models a side, perfectly separated: threshold 2 gives FPR = FNR = 0 -> floored at 1/4:
    # log(1 - 1/4) - log(1/4) = log 3, the largest value two models can certify.
    eps = per_example_epsilon(np.array([[3.0], [4.0]]), np.array([[1.0], [2.0]]), 0.0)
    assert np.isclose(eps[0], np.log(3))
    # Interleaved [1, 3] vs [2, 4]: the best threshold (3: FPR 1/2, FNR 1/2... or 1: FPR 1, FNR 0)
    # "> 1": FPR = 1 on retrained, FNR = 0 -> 1/4: log(1 - 1/4) - log(1) < 0; mirror "<= 1":
    # FPR 0 -> 1/4, FNR = 1/2 (unlearned 3 is > 1): log(1 - 1/2) - log(1/4) = log 2.
    eps = per_example_epsilon(np.array([[1.0], [3.0]]), np.array([[2.0], [4.0]]), 0.0)
    assert np.isclose(eps[0], np.log(2))


def test_quality_buckets_by_bin_width():
    assert forgetting_quality(np.array([0.0, 0.49, 0.5, 1.2]), 0.5) == (1 + 1 + 0.5 + 0.25) / 4


def test_largest_certifiable_epsilon_grows_with_the_models():
    assert np.isclose(largest_certifiable_epsilon(2, 0.0), np.log(3))  # the hand-computed case above
    assert np.isclose(largest_certifiable_epsilon(3, 0.01), np.log(2 * 3 * 0.99 - 1))
    assert largest_certifiable_epsilon(3, 0.01) < largest_certifiable_epsilon(32, 0.01)


def test_the_three_populations_take_disjoint_seeds():
    """A method's runs must not share the reference retrainings' seeds: a fine-tuning baseline would re-draw
    retraining's batch order, and populations that correlate look alike."""
    from remi.audit.forgetting_quality import unlearned_seeds
    from remi.params_schema import ForgettingQuality

    settings = ForgettingQuality(models=3, seed=7, delta=0.01, bin_width=0.5, train_together=3)
    retrained = {settings.seed + i for i in range(2 * settings.models)}  # the reference, then the second
    assert len(set(unlearned_seeds(settings))) == 3 and not set(unlearned_seeds(settings)) & retrained


def test_anatomy_tells_one_shift_of_every_sample_from_sample_by_sample_misses():
    from remi.audit.forgetting_anatomy import anatomy
    from remi.params_schema import ForgettingQuality

    settings = ForgettingQuality(models=8, seed=0, delta=0.01, bin_width=0.5, train_together=1)
    rng = np.random.default_rng(0)
    # Per-sample means spread widely, as logit-scaled confidences are; each population scatters around them.
    means = rng.normal(5, 8, 500)
    reference, independent = (means + rng.normal(0, 1, (8, 500)) for _ in range(2))
    shifted = means + 3 + rng.normal(0, 1, (8, 500))  # every sample 3 units more confident
    shuffled = means + rng.normal(0, 4, 500) + rng.normal(0, 1, (8, 500))  # sample by sample, no shift
    shift, scatter = (anatomy(population, reference, independent, {"predicted_location": independent.mean(0)}, settings)
                      for population in (shifted, shuffled))
    # A shift: nearly all of the distance is the offset, and the per-sample means still follow retraining's.
    assert 2.8 < shift["offset_from_retraining"] < 3.2
    assert shift["distance_to_retraining"] - shift["offset_from_retraining"] < 0.1
    assert shift["correlation_with_retraining"] > 0.99
    # Sample by sample: as far away, no offset, and a correlation well below.
    assert scatter["distance_to_retraining"] > 2.5 and abs(scatter["offset_from_retraining"]) < 0.5
    assert scatter["correlation_with_retraining"] < 0.95


def test_the_predicted_location_is_as_good_as_what_its_inputs_know():
    """Where retraining's per-sample means follow the target's statistic and the shadows' mean, the prediction
    finds them and a population moved there scores as if at retraining's own location; where they carry what
    neither input knows, it cannot, and the counterfactual says so, unless a further input carries it."""
    from remi.audit.forgetting_anatomy import anatomy, predicted_location
    from remi.params_schema import ForgettingQuality

    settings = ForgettingQuality(models=8, seed=0, delta=0.01, bin_width=0.5, train_together=1)
    rng = np.random.default_rng(1)
    target, shadow_means = rng.normal(8, 4, 500), rng.normal(4, 4, 500)
    shadows = shadow_means + rng.normal(0, 0.1, (8, 500))
    unlearned = target + rng.normal(0, 1, (8, 500))  # a method that stays where the target is
    for hidden, explained in ((0.0, True), (6.0, False)):
        unknown = rng.normal(0, hidden, 500)  # what neither the target nor the shadows know
        means = 0.4 * target + 0.6 * shadow_means - 1 + unknown
        reference, second = (means + rng.normal(0, 1, (8, 500)) for _ in range(2))
        # A further input that carries it (as the retain set's neighbours might): the fit takes it up.
        predicted = {"predicted_location": predicted_location(target, shadows, second),
                     "with_more": predicted_location(target, shadows, second, more=unknown[:, None])}
        row = anatomy(unlearned, reference, second, predicted, settings)
        correlation = np.corrcoef(predicted["predicted_location"], reference.mean(0))[0, 1]
        assert np.corrcoef(predicted["with_more"], reference.mean(0))[0, 1] > 0.98
        assert row["quality_at_with_more"] >= row["quality_with_retrainings_location"] - 0.02
        if explained:
            assert correlation > 0.98
            # At least as good: the fit averages out the second population's noise in its means.
            assert row["quality_at_predicted_location"] >= row["quality_with_retrainings_location"] - 0.02
            assert row["quality_at_predicted_location"] > row["forgetting_quality"] + 0.1
        else:
            assert correlation < 0.6
            assert row["quality_at_predicted_location"] < row["quality_with_retrainings_location"] - 0.1
