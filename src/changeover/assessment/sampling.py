"""Running the fit with its sampling policy: converged, and long enough to settle close calls.

The policy (issue 10): every reported quantity must have R-hat <= 1.01, bulk
and tail ESS >= 400 and no divergent transitions. A comparison that fails,
or whose decision probability lies within ~2 Monte Carlo standard errors of
the confidence threshold, is sampled again, longer (the length its shortfall
asks for, up to ``max_scale`` times the requested draws and warm-up; an R-hat
miss asks for 4x the round that missed); after
divergent transitions with smaller steps (the target acceptance rate halfway
to 1, as Stan users raise ``adapt_delta``) rather than only longer: on a test
scenario, jumping to a 4x-long fit at 0.9 left a lone divergence in 2 of 6
seeds, which made the verdict depend on the seed. A NUTS fit (``stats.nuts``:
every fit's first sampler under the default "auto") that diverges is sampled again by NUTS at target acceptance 0.95
(``NUTS_RETRY_TARGET``; a stiff fit, which starts at 0.975, at 0.9875: ``stats.nuts.first_target``), and if it
diverges there too, by the static HMC of
``stats.hmc`` (dense metric, 0.95 target acceptance). Why the NUTS retry
(since 2026-12-01; 3 candidates x 3 dimensions x 6 segments at 0.5% labelled,
2 tables per size, the whole policy): at 10^5-10^6 items per segment whitened
NUTS at 0.8 left divergences in 1-6 of 9 fits, and at 0.95 in 0-1 of 9
(fit_pairs alone); under the policy the CPU went from 2.9-7.1 s to 3.0-5.5 s,
every fit converged before and after. On a comparison whose candidate has
no scored answer at all (its judge parameters meet no data: a funnel in the
spread), NUTS left 1-12 divergences at target 0.8 and 0-3 at 0.9 or 0.95
over 4 seeds; the static HMC 0-2 at 0.95 over 6 seeds (1-5 in 4 of 6 at
500-1000 draws and 0.95-0.975); under the policy ``assess`` gives it NO-GO from a
converged posterior for every seed of 0-11, with three rounds as with four
(seed 0 takes four: NUTS, then three of the HMC; tests/core/test_assessment_failures.py). Since 2026-12-03
that comparison is stiff (``stats.nuts.Frame.stiff``, 18.6 nats) and NUTS starts it at 0.975: seeds 0-11 end
NO-GO, converged, after 1-2 rounds of NUTS alone (before: 2-5 rounds, 5 of 12 handed to the HMC).
The static HMC that takes over starts afresh, and has as many rounds as NUTS had before it (since
2026-12-02, when NUTS became every fit's first sampler; one more round before): on XSTest with safe /
unsafe segments (120 labels, 50 label draws) 2 of 50 assessments were handed over, one of them needed
all six rounds, and all 50 converged.
What still fails is reported
as not converged (the service then gives no GO or NO-GO); what is still close
is ``borderline``. Only the comparisons that need it are refitted.

The bound was 4x until 2026-12-01: on XSTest (120 labelled prompts, segments
safe / unsafe, 25 label draws), 6 of 25 assessments left one comparison
unconverged at 4x (R-hat 1.012-1.026 on a pass rate near 1 in the unsafe
segment, whose long tail the chains cross slowly); at 8x, 3 of 25 in that
measurement; benchmarks/bench_assess.py 1b (seed = the label draw) leaves 6 of
25 at 8x, before and after the sampler changes of the same day (5 of them a
lone divergence the raised target acceptance did not remove).

Rounds: 4 (was 3) since 2026-12-01 (the same XSTest measurement, 50 label
draws, seed = the draw): 12 of 50 assessments were left unconverged after 3
rounds, nearly all by 1-3 divergent transitions at the 8x bound and the
third target acceptance; a fourth round (the target halfway to 1 once more)
leaves 3 of 50, for 1.25x the CPU of the 50 assessments (only the fits still
failing are refitted). Tried on the way and not kept: sampling centred the
segment deviations the data pin down at the posterior mode (information >= 150
times the prior's; 6 of 50 unconverged, and slow mixing in 2 where there was none,
R-hat 1.05-1.07); centring the truth-profile deviations from 40 labels per
segment (1 of 25, but the bulk ESS of the standard scenarios fell from
1,259-1,689 to 124-549 at the same draws).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from changeover.stats.diagnostics import ess, ess_tail, rhat
from changeover.stats.model import SAMPLER_DEFAULTS, FitSettings, PairFit, fit_pairs
from changeover.stats.tables import PairTable

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """When a fit is good enough, and how much longer to sample when it is not."""

    rhat_max: float = 1.01
    ess_min: float = 400.0
    max_divergences: int = 0
    max_scale: int = 8  # the longest round samples this many times the requested draws and warm-up
    rhat_step: float = 4.0  # an R-hat miss samples this many times longer than the round that missed
    max_rounds: int = 4  # fits in all, the first included (one more for every fit once NUTS handed one to the HMC)
    extend: bool = True  # False: one round, report what it gave


@dataclass(frozen=True, slots=True)
class Convergence:
    """Diagnostics of one fit over every quantity it reports."""

    rhat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int

    def ok(self, policy: SamplingPolicy) -> bool:
        return (
            self.rhat_max <= policy.rhat_max
            and self.ess_bulk_min >= policy.ess_min
            and self.ess_tail_min >= policy.ess_min
            and self.divergences <= policy.max_divergences
        )

    def factor_needed(self, policy: SamplingPolicy) -> float:
        """How many times longer to sample: ESS grows about in proportion to the draws (padded by
        a fifth); an R-hat miss asks for ``rhat_step`` times the round that missed, or what the ESS asks if
        more (up to the bound).
        Divergences ask for smaller steps, not more draws (more draws only give a rare divergence
        more chances)."""
        low = min(self.ess_bulk_min, self.ess_tail_min)
        for_ess = 1.2 * policy.ess_min / max(low, 1.0) if low < policy.ess_min else 1.0
        return max(policy.rhat_step, for_ess) if self.rhat_max > policy.rhat_max else for_ess


def reported_quantities(fit: PairFit, shares: np.ndarray) -> list[np.ndarray]:
    """[chains, draws] series of what the result reports: deltas and pass rates, overall and per segment."""
    out = [
        fit.overall(fit.delta, shares),
        fit.overall(fit.incumbent_rate, shares),
        fit.overall(fit.candidate_rate, shares),
    ]
    for s in range(fit.delta.shape[-1]):
        out += [fit.delta[..., s], fit.incumbent_rate[..., s], fit.candidate_rate[..., s]]
    return out


def convergence(fit: PairFit, shares: np.ndarray) -> Convergence:
    series = reported_quantities(fit, shares)
    return Convergence(
        float(np.nanmax([rhat(x) for x in series])),
        float(np.nanmin([ess(x) for x in series])),
        float(np.nanmin([ess_tail(x) for x in series])),
        int(fit.divergences),
    )


@dataclass(slots=True)
class SampledFit:
    """A fit, its diagnostics, the length (as a multiple of the requested one) it took, and its settings."""

    fit: PairFit
    convergence: Convergence
    scale: int
    converged: bool
    settings: FitSettings


def sample(
    tables: list[PairTable],
    shares: np.ndarray,
    settings: FitSettings,
    policy: SamplingPolicy,
    unsettled: Callable[[int, PairFit], float | None] = lambda i, fit: None,
    progress: Progress | None = None,
) -> tuple[list[SampledFit], int]:
    """Fit every table under the policy; returns the fits and the number of rounds run.

    ``unsettled(i, fit)``: for table i, by what factor more draws would likely
    settle a decision probability of a converged fit that is too close to its
    threshold, or None. A round samples each table that needs it at the smallest
    power of two (times the requested length, at most ``max_scale``) that covers
    the factor it needs, never shorter than its last round; after divergences it
    also takes smaller steps, at the same length if no more draws are needed. At
    most ``max_rounds`` rounds (more when a fit was handed from NUTS to the
    static HMC: as many more as NUTS had before). Under the sampler "auto" a NUTS
    fit still failing when NUTS can do no more (out of rounds, or at the longest
    length without a divergence to take smaller steps for) is handed to the HMC
    too: on XSTest with safe / unsafe segments and 40 / 80 labelled prompts
    (25 label draws each), NUTS had left one assessment each unconverged that
    way (R-hat 1.023 and tail ESS 49 at 8x; a divergence in the fourth round).

    Each table has its own length (since 2026-12-02; before, a round sampled every table it refitted at the
    largest length any of them needed): at 10^6 items per segment (3x3x6, 0.5% labelled) one fit's R-hat miss
    had sent six fits that only needed smaller steps to 4x their length too.
    """
    out: list[SampledFit] = []
    for fit in fit_pairs(tables, settings):
        conv = convergence(fit, shares)
        out.append(SampledFit(fit, conv, 1, conv.ok(policy), settings))
    rounds, handed_over = 1, 0
    while policy.extend:
        out_of_rounds = rounds >= policy.max_rounds + handed_over
        if out_of_rounds and handed_over:
            break
        need: dict[int, float] = {}
        for i, s in enumerate(out):
            if not s.converged:
                need[i] = s.scale * s.convergence.factor_needed(policy)
            elif (more := unsettled(i, s.fit)) is not None:
                need[i] = s.scale * more
        # each fit keeps its own sampler and step settings; one that diverged takes the next remedy; one that
        # did not and is already at the length it needs is left as it is (the same settings draw the same draws)
        # under "auto", a NUTS fit NUTS cannot bring further (out of rounds, or at the longest length and still
        # failing) goes to the static HMC, as one that diverged at the retry's target does
        plans: dict[int, FitSettings] = {}
        for i in sorted(need):
            s = out[i]
            scale = max(s.scale, _power_of_two(need[i], policy.max_scale))
            if not out_of_rounds and s.convergence.divergences > policy.max_divergences:
                plans[i] = replace(after_divergences(s.settings, s.fit), scale=scale)
            elif not out_of_rounds and scale > s.scale:
                plans[i] = replace(s.settings, scale=scale)
            elif not s.converged and s.fit.sampler == "nuts" and s.settings.sampler == "auto":
                plans[i] = replace(_to_hmc(s.settings), scale=scale)
        if not plans:
            break  # at the bound: more of the same would not change the answer
        rounds += 1
        handing = any(out[i].fit.sampler == "nuts" and plan.sampler == "hmc" for i, plan in plans.items())
        if handing and not handed_over:
            handed_over = rounds - 1  # the static HMC starts afresh: as many rounds as NUTS had before it
        groups: dict[tuple[str, float | None, int], list[int]] = {}
        for i, plan in plans.items():
            groups.setdefault((plan.sampler, plan.target_accept, plan.scale), []).append(i)
        for members in groups.values():
            longer = plans[members[0]]
            if progress is not None:
                target = "" if longer.target_accept is None else f", target acceptance {longer.target_accept:.3g}"
                progress(
                    f"sampling {len(members)} comparison(s) again ({longer.sampler}, {longer.scale}x longer{target})"
                )
            known = [out[i].fit.frame for i in members]  # the mode search is not repeated
            for i, fit in zip(members, fit_pairs([tables[i] for i in members], longer, known), strict=True):
                conv = convergence(fit, shares)
                out[i] = SampledFit(fit, conv, longer.scale, conv.ok(policy), longer)
    return out, rounds


NUTS_RETRY_TARGET = 0.95  # a NUTS fit that diverged below this target acceptance is sampled again by NUTS at it


def after_divergences(settings: FitSettings, fit: PairFit) -> FitSettings:
    """The settings of a fit's next round after divergent transitions in ``fit``: a NUTS fit (nutpie) is
    sampled again by NUTS once, at target acceptance ``NUTS_RETRY_TARGET`` or halfway to 1 from its first
    round's if that is higher (a stiff fit's, ``stats.nuts.first_target``), and after that by the static HMC at
    its own target (0.95, dense metric); an HMC fit with its target acceptance halfway to 1."""
    halfway = fit.target_accept + (1.0 - fit.target_accept) / 2
    # settings without a target of their own drew a first round (the policy's retries set one)
    if fit.sampler == "nuts" and (fit.target_accept < NUTS_RETRY_TARGET or settings.target_accept is None):
        return replace(settings, target_accept=max(NUTS_RETRY_TARGET, halfway))
    if fit.sampler == "nuts" and settings.sampler == "auto":
        return _to_hmc(settings)
    return replace(settings, target_accept=halfway)


def _to_hmc(settings: FitSettings) -> FitSettings:
    """The settings of a fit the static HMC takes over from NUTS: its own target acceptance (0.95)."""
    return replace(settings, sampler="hmc", target_accept=SAMPLER_DEFAULTS["hmc"][2])


def _power_of_two(wanted: float, bound: int) -> int:
    """The smallest power of two >= ``wanted`` (at least 1), at most ``bound``."""
    scale = 1
    while scale < wanted and scale * 2 <= bound:
        scale *= 2
    return scale
