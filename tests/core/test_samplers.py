"""The two samplers of ``stats.model``: nutpie's NUTS (the default) and the static HMC agree, and the policy
falls back from one to the other after divergences."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from changeover.assessment.sampling import NUTS_RETRY_TARGET, after_divergences
from changeover.cli import run
from changeover.stats import nuts
from changeover.stats.design import design
from changeover.stats.model import FitSettings, PairFit, _Posterior, fit_pairs
from changeover.stats.simulate import STANDARD_SCENARIOS, production_scenario, simulate, simulate_counts


def _table(seed: int = 3):
    rng = np.random.default_rng(seed)
    sc = dataclasses.replace(STANDARD_SCENARIOS[1], items_per_segment=800, labels_per_segment=60)
    return simulate(sc, rng)[0]


def test_nuts_and_hmc_draw_the_same_posterior():
    """Posterior mean and sd of every segment delta and pass rate agree within a few Monte Carlo errors."""
    table = _table()
    (a,) = fit_pairs([table], FitSettings(sampler="nuts", seed=1))
    (b,) = fit_pairs([table], FitSettings(sampler="hmc", seed=1))
    for name in ("delta", "incumbent_rate", "candidate_rate"):
        x, y = PairFit.flat(getattr(a, name)), PairFit.flat(getattr(b, name))
        sd = np.sqrt((x.var(0) + y.var(0)) / 2)
        # ESS >= 400 per fit: the difference of two means has an sd of at most sd * sqrt(2 / 400)
        assert np.all(np.abs(x.mean(0) - y.mean(0)) < 5 * sd * np.sqrt(2 / 400)), name
        assert np.all(np.abs(x.std(0) / y.std(0) - 1) < 0.2), name
    assert a.divergences == 0 and b.divergences == 0


def test_nuts_is_deterministic_for_a_seed_and_moves_with_it():
    table = _table(4)
    settings = FitSettings(warmup=60, draws=40, seed=7)
    (a,) = fit_pairs([table], settings)
    (b,) = fit_pairs([table], settings)
    (c,) = fit_pairs([table], dataclasses.replace(settings, seed=8))
    assert np.array_equal(a.delta, b.delta)
    assert not np.array_equal(a.delta, c.delta)
    assert a.delta.shape[:2] == (4, 40)


def test_the_whitening_is_the_laplace_approximation_at_the_mode():
    rng = np.random.default_rng(5)
    t = simulate_counts(production_scenario(rng, 10**5, 0.01), rng)[0]
    post = _Posterior([design(t)], 1)
    D = int(post.dims[0])
    start = post.initial(0, 1, [0])[0, :D]
    frame = nuts.laplace(post.data, 0, start, 11)
    _, grad = post(frame.mean[None, :])
    _, grad0 = post(start[None, :])
    assert np.abs(grad[0]).max() < 1e-3 * max(1.0, np.abs(grad0[0]).max())  # a stationary point
    assert np.allclose(np.tril(frame.chol), frame.chol) and np.all(np.diag(frame.chol) > 0)
    assert frame.curvature[1] > frame.curvature[0] > 0  # a maximum: the negative Hessian is positive definite


def test_user_data_refuses_arrays_it_cannot_point_at():
    post = _Posterior([design(_table())], 1)
    frame = nuts.laplace(post.data, 0, post.initial(0, 1, [0])[0, : int(post.dims[0])], 11)
    bad = list(post.data)
    bad[1] = np.asfortranarray(np.repeat(bad[1], 2, axis=0))
    with pytest.raises(TypeError, match="C-contiguous"):
        nuts.user_data(tuple(bad), 0, frame)


def test_after_divergences_nuts_takes_smaller_steps_then_hands_over_to_the_static_hmc():
    (fit,) = fit_pairs([_table()], FitSettings(sampler="nuts", warmup=40, draws=20))
    retry = after_divergences(FitSettings(seed=3), fit)
    assert (retry.sampler, retry.target_accept, retry.seed) == ("auto", NUTS_RETRY_TARGET, 3)
    (careful,) = fit_pairs([_table()], replace(retry, warmup=40, draws=20))
    assert careful.sampler == "nuts" and careful.target_accept == NUTS_RETRY_TARGET
    hmc = after_divergences(retry, careful)  # the settings it was drawn with
    assert (hmc.sampler, hmc.target_accept, hmc.seed) == ("hmc", 0.95, 3)
    assert hmc.lengths("hmc") == (500, 500, 0.95)  # the HMC's own lengths, not NUTS's 150 + 300
    assert replace(hmc, scale=4).lengths("hmc") == (2000, 2000, 0.95)
    assert FitSettings(warmup=50, draws=60, scale=2).lengths("hmc")[:2] == (100, 120)  # as asked, times scale
    (again,) = fit_pairs([_table()], replace(hmc, warmup=40, draws=20))
    assert again.sampler == "hmc" and again.target_accept == 0.95
    assert after_divergences(hmc, again).target_accept == pytest.approx(0.975)
    # asked for NUTS, NUTS keeps the fit: smaller steps again, never the HMC
    kept = after_divergences(FitSettings(seed=3, sampler="nuts", target_accept=NUTS_RETRY_TARGET), careful)
    assert (kept.sampler, kept.target_accept) == ("nuts", pytest.approx(0.975))


def test_only_the_fits_that_diverged_change_sampler(monkeypatch):
    """A comparison whose candidate never answered is stiff (``stats.nuts.Frame.stiff``): whitened NUTS starts
    it at target acceptance 0.975 and converges in one round. Started at 0.8 as before the stiffness check, it
    diverges (seed 0: 12 divergences), and again at 0.95; the policy then samples it by the static HMC (which
    in some seeds leaves 1-2 divergences there too, so this test checks the hand-over, not convergence), and
    the other comparison of the call stays with NUTS."""
    from changeover.assessment.sampling import SamplingPolicy, sample
    from changeover.assessment.service import prepare
    from changeover.config import spec_from_dict
    from changeover.records import record_from_dict
    from changeover.stats.simulate import Scenario

    from .conftest import scenario_records

    sc = Scenario("equal", [0.8, 0.8], [0.8, 0.8], items_per_segment=150, labels_per_segment=20)
    rows = scenario_records(sc, 11)
    failed = [
        {"item": r["item"], "model": "cand", "segment": r["segment"], "error": "503"} if r["model"] == "cand" else r
        for r in rows
    ]
    spec = {"incumbent": "legacy", "candidates": ["cand"], "segment_by": ["region"],
            "dimensions": {"correctness": {"margin": 0.02}}}  # fmt: skip
    tables = []
    for data in (failed, rows):
        prepared = prepare(spec_from_dict(spec), [record_from_dict(r, f"row {i}") for i, r in enumerate(data)])
        tables += [c.table for c in prepared.comparisons.values()]
    sampled, _ = sample(tables, np.full(2, 0.5), FitSettings(seed=0), SamplingPolicy())
    assert [s.fit.sampler for s in sampled] == ["nuts", "nuts"] and sampled[0].converged
    assert sampled[0].fit.frame is not None and sampled[0].fit.frame.stiff
    assert (sampled[0].fit.target_accept, sampled[0].scale) == (nuts.STIFF_TARGET, 1)
    monkeypatch.setattr(nuts, "STIFF_FALL", np.inf)  # no fit is stiff: every NUTS fit starts at 0.8
    sampled, rounds = sample(tables, np.full(2, 0.5), FitSettings(seed=0), SamplingPolicy())
    assert [s.fit.sampler for s in sampled] == ["hmc", "nuts"] and rounds >= 2
    assert sampled[0].fit.warmup >= 500 and sampled[0].fit.delta.shape[1] >= 500  # the HMC's own lengths
    assert sampled[1].settings.sampler == "auto" and sampled[1].scale == 1  # NUTS kept it (at most a retry at 0.95)
    assert sampled[1].converged


def test_sampler_defaults_and_a_typo():
    assert FitSettings().sampler == "auto"
    assert FitSettings().lengths("nuts") == (150, 300, 0.8) and FitSettings().lengths("hmc") == (500, 500, 0.95)
    assert FitSettings(draws=99).lengths("nuts")[1] == 99 and FitSettings(draws=99).lengths("hmc")[1] == 99
    with pytest.raises(ValueError, match="unknown sampler 'nut'"):
        FitSettings(sampler="nut")


def test_auto_whitens_where_the_laplace_approximation_holds():
    """NUTS draws both fits; production scale (many labels): the approximation holds, NUTS runs whitened by it;
    a small table: in theta."""
    rng = np.random.default_rng(5)
    big = simulate_counts(production_scenario(rng, 10**5, 0.01), rng)[0]
    fits = fit_pairs([_table(), big], FitSettings(seed=2))
    assert [f.sampler for f in fits] == ["nuts", "nuts"]
    assert [f.delta.shape[1] for f in fits] == [300, 300] and [f.warmup for f in fits] == [150, 150]
    alone = fit_pairs([big], FitSettings(seed=2))[0]
    assert np.array_equal(alone.delta, fits[1].delta)  # a fit's draws do not depend on the rest of the call
    assert fits[0].frame is not None and fits[1].frame is not None
    assert [fits[0].frame.whitens, fits[1].frame.whitens] == [False, True]
    # a refit handed the Laplace approximations it already had (the sampling policy's rounds) draws the same
    again = fit_pairs([_table(), big], FitSettings(seed=2), [fits[0].frame, fits[1].frame])
    assert all(np.array_equal(a.delta, b.delta) for a, b in zip(again, fits, strict=True))
    assert fit_pairs([big], FitSettings(seed=2, sampler="hmc", draws=20, warmup=20))[0].frame is None


def test_a_stiff_posterior_starts_with_smaller_steps():
    """10^6 items per segment, 0.5% labelled: 3 sd out along an axis of the whitening the log posterior lies
    far below its Laplace approximation (tails steeper than the mode's curvature, where a step size adapted in
    the bulk diverges): NUTS starts that fit at target acceptance 0.975, and it does not diverge. 10^5 items,
    1% labelled: close to the approximation, 0.8."""
    rng = np.random.default_rng(1)
    stiff = simulate_counts(production_scenario(rng, 10**6, 0.005), rng)[0]
    rng = np.random.default_rng(5)
    big = simulate_counts(production_scenario(rng, 10**5, 0.01), rng)[0]
    fits = fit_pairs([stiff, big], FitSettings(seed=2))
    frames = [f.frame for f in fits]
    assert frames[0] is not None and frames[1] is not None
    assert [fr.whitens for fr in frames] == [True, True]
    assert frames[0].stiffness > 2 * nuts.STIFF_FALL and frames[1].stiffness < nuts.STIFF_FALL
    assert [fr.stiff for fr in frames] == [True, False]
    assert [f.target_accept for f in fits] == [nuts.STIFF_TARGET, 0.8]
    assert fits[0].divergences == 0
    # a target set higher stays; a lower one is raised for the stiff fit only
    assert nuts.first_target(frames[0], 0.99) == 0.99 and nuts.first_target(frames[0], 0.6) == nuts.STIFF_TARGET
    assert nuts.first_target(frames[1], 0.6) == 0.6 and nuts.first_target(None, 0.6) == 0.6
    # had it diverged: NUTS once more, halfway to 1 from there; after that the static HMC
    retry = after_divergences(FitSettings(seed=2), fits[0])
    assert (retry.sampler, retry.target_accept) == ("auto", pytest.approx(0.9875))
    again = fit_pairs([stiff], retry, [frames[0]])[0]
    assert again.target_accept == pytest.approx(0.9875)
    assert after_divergences(retry, again).sampler == "hmc"


def test_cli_sampler_option(tmp_path, spec_path, capsys):
    from .conftest import scenario_records, write_jsonl

    sc = dataclasses.replace(STANDARD_SCENARIOS[0], items_per_segment=150, labels_per_segment=30)
    records = write_jsonl(tmp_path / "r.jsonl", scenario_records(sc, 2))
    assert run(["assess", "--spec", str(spec_path), "--records", str(records), "--sampler", "nut"]) == 2
    assert "--sampler must be auto, nuts or hmc, not 'nut'" in capsys.readouterr().err
    out = tmp_path / "d.json"
    rc = run(["assess", "--spec", str(spec_path), "--records", str(records), "--sampler", "hmc", "--json", str(out)])
    assert rc in (0, 1, 3)
    import json

    sampling = json.loads(out.read_text())["diagnostics"]["sampling"]
    assert sampling["requested_draws"] == 500 and sampling["requested_warmup"] == 500  # the HMC's defaults


def test_each_comparison_is_sampled_again_at_the_length_it_needs():
    """A round refits each table at the length it asks for (a close call asking for 4x, another for 2x), not
    every table at the longest any of them asked for."""
    from changeover.assessment.sampling import SamplingPolicy, sample

    tables = [_table(3), _table(5)]  # both converge in the first round (seed 1)
    asked = {0: 4.0, 1: 2.0}
    calls: list[int] = []

    def unsettled(i: int, fit: PairFit) -> float | None:
        calls.append(i)
        return asked[i] if fit.delta.shape[1] < 300 * asked[i] else None

    policy = SamplingPolicy(max_rounds=2)  # sampler "nuts": a fit left failing is not handed to the HMC after
    sampled, rounds = sample(tables, np.full(3, 1 / 3), FitSettings(seed=1, sampler="nuts"), policy, unsettled)
    assert [s.scale for s in sampled] == [4, 2] and rounds == 2
    assert [s.fit.delta.shape[1] for s in sampled] == [1200, 600] and [s.fit.warmup for s in sampled] == [600, 300]
    assert sorted(set(calls)) == [0, 1]


def test_auto_hands_a_fit_nuts_cannot_bring_further_to_the_static_hmc():
    """Out of rounds and still failing (here: a policy asking for an ESS no fit of this length reaches), an
    "auto" fit is sampled once more, by the static HMC; under "nuts" it is left as it is."""
    from changeover.assessment.sampling import SamplingPolicy, sample

    policy = SamplingPolicy(max_rounds=1, ess_min=10**6)
    auto, rounds = sample([_table(3)], np.full(3, 1 / 3), FitSettings(seed=1), policy)
    assert auto[0].fit.sampler == "hmc" and not auto[0].converged and rounds >= 2
    kept, rounds = sample([_table(3)], np.full(3, 1 / 3), FitSettings(seed=1, sampler="nuts"), policy)
    assert kept[0].fit.sampler == "nuts" and rounds == 1
