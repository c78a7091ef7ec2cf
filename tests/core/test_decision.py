"""The decision rule: typed calls, Monte Carlo errors of the probabilities, borderline calls, more draws."""

import json

import numpy as np
import pytest

from changeover.stats import decision as dec
from changeover.stats.decision import Call, Verdict, judge_delta, mcse_probability, more_draws_needed

MARGIN, CONF = 0.02, 0.95


def test_enums_are_the_old_strings():
    assert dec.GO == "GO" and dec.NO_GO == "NO-GO" and dec.NEED_LABELS == "NEED-LABELS"
    assert dec.SUPERIOR == "superior" and dec.NONINFERIOR == "non-inferior" and dec.REGRESSION == "regression"
    assert Verdict("NO-GO") is Verdict.NO_GO and Call("inconclusive") is Call.INCONCLUSIVE
    assert json.dumps({"v": Verdict.NEED_LABELS, "c": Call.NONINFERIOR}) == '{"v": "NEED-LABELS", "c": "non-inferior"}'
    assert f"{Verdict.GO}" == "GO"
    assert dec.combine(["superior", Call.NONINFERIOR]) is Verdict.GO
    assert dec.combine(["non-inferior", "regression"]) is Verdict.NO_GO
    assert dec.combine(["non-inferior", "inconclusive"]) is Verdict.NEED_LABELS
    assert dec.dimension_verdict("superior", ["non-inferior", "inconclusive"]) is Call.INCONCLUSIVE
    assert dec.overall_verdict(["NO-GO", "NO-GO"]) is Verdict.NO_GO


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.95])
def test_mcse_of_iid_draws_is_the_binomial_error(p):
    rng = np.random.default_rng(int(p * 100))
    n = 4000
    ind = (rng.random((4, n // 4)) < p).astype(float)
    p_hat, se, e = mcse_probability(ind)
    expected = np.sqrt(p_hat * (1 - p_hat) / n)
    assert abs(e / n - 1) < 0.15, e
    assert abs(se / expected - 1) < 0.1, (se, expected)


def test_mcse_grows_with_autocorrelation():
    rng = np.random.default_rng(3)
    x = np.zeros((4, 2000))
    for c in range(4):  # AR(1) with rho = 0.9: ESS ~ n (1 - rho) / (1 + rho) ~ n / 19
        e = rng.standard_normal(2000)
        for t in range(1, 2000):
            x[c, t] = 0.9 * x[c, t - 1] + e[t]
    p, se, ess = mcse_probability(x > 0)
    assert 8000 / 40 < ess < 8000 / 8
    assert se > 3 * np.sqrt(p * (1 - p) / 8000)


def test_judgement_accepts_chains_or_flat_and_reports_mcse():
    rng = np.random.default_rng(0)
    d = rng.normal(0.05, 0.015, (4, 500))
    j = judge_delta(d, MARGIN, CONF)
    k = judge_delta(d.ravel(), MARGIN, CONF)
    assert j.p_noninferior == k.p_noninferior and j.call is Call.SUPERIOR and j.verdict is Call.SUPERIOR
    assert not j.borderline and j.threshold == CONF
    assert 0 < j.mcse_superior < 0.02 and j.mcse_noninferior > 0  # p = 1 still has a (small) error bound
    with pytest.raises(AttributeError):
        j.call = Call.REGRESSION  # frozen


def _draws_with_p(p_ni: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """iid normal draws whose P(delta > -margin) is p_ni."""
    from scipy.special import ndtri

    sd = 0.01
    mean = -MARGIN + sd * float(ndtri(p_ni))
    return rng.normal(mean, sd, (4, n // 4))


def test_a_borderline_call_is_never_go_nor_no_go():
    calls = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        j = judge_delta(_draws_with_p(0.955, 1000, rng), MARGIN, CONF)  # MCSE ~0.0066: within 2 MCSE of 0.95
        calls.append(j)
        if j.borderline:
            assert j.call is Call.INCONCLUSIVE
            assert dec.combine([j.call]) is Verdict.NEED_LABELS
    assert np.mean([j.borderline for j in calls]) > 0.7
    # the plain rule (p >= g) would have said GO for most of these seeds: the flip the rule removes
    assert np.mean([j.p_noninferior >= CONF for j in calls]) > 0.6
    assert all(j.call is not Call.NONINFERIOR or j.p_noninferior - 2 * j.mcse_noninferior >= CONF for j in calls)
    # an unsettled regression is not a regression
    flipped = judge_delta(-(_draws_with_p(0.953, 1000, np.random.default_rng(5)) + 2 * MARGIN), MARGIN, CONF)
    assert flipped.borderline and flipped.call is Call.INCONCLUSIVE
    assert dec.combine([flipped.call]) is Verdict.NEED_LABELS


def test_clear_calls_are_not_borderline():
    rng = np.random.default_rng(4)
    assert judge_delta(_draws_with_p(0.995, 1000, rng), MARGIN, CONF).call is Call.NONINFERIOR
    assert judge_delta(_draws_with_p(0.6, 1000, rng), MARGIN, CONF).call is Call.INCONCLUSIVE
    j = judge_delta(-(_draws_with_p(0.999, 1000, rng) + 2 * MARGIN), MARGIN, CONF)
    assert j.call is Call.REGRESSION and not j.borderline
    assert more_draws_needed([j]) is None


def test_more_draws_make_the_verdict_seed_stable():
    """With the factor ``more_draws_needed`` asks for, every seed gives the same verdict."""
    p_true = 0.962
    few, more = [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        j = judge_delta(_draws_with_p(p_true, 1000, rng), MARGIN, CONF)
        few.append(dec.combine([j.call]))
        factor = more_draws_needed([j], max_factor=16.0)
        if factor is not None:
            assert 1.5 <= factor <= 16.0
            j = judge_delta(_draws_with_p(p_true, int(1000 * factor), rng), MARGIN, CONF)
        more.append(dec.combine([j.call]))
    assert len(set(few)) == 2  # 1,000 draws: GO for some seeds, NEED-LABELS for others
    assert np.mean([v == Verdict.GO for v in more]) >= 0.9  # after the extra draws: (nearly) all agree
    assert more_draws_needed([]) is None


def test_a_probability_on_the_threshold_asks_for_the_cap():
    rng = np.random.default_rng(9)
    j = judge_delta(_draws_with_p(0.95, 1000, rng), MARGIN, CONF)
    assert j.borderline
    assert more_draws_needed([j], max_factor=4.0) == 4.0
