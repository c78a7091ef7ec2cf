"""The assessment: records + spec -> posterior quality, verdicts and the labels to get next.

This is the feature behind ``changeover assess``: it pairs each candidate's
responses with the incumbent's, reduces them to count tables per dimension,
fits the measurement model (``stats``), and turns the posterior into the
decision JSON of the spec (GO / NO-GO / NEED-LABELS at the stated confidence).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from changeover.config import MigrationSpec
from changeover.errors import DataError
from changeover.records import Record
from changeover.signals import SignalScale, infer_scale
from changeover.stats import decision as dec
from changeover.stats.diagnostics import ess, rhat
from changeover.stats.labelvalue import LabelTarget, labels_needed, rank_labels
from changeover.stats.model import FitSettings, PairFit, fit_pairs
from changeover.stats.tables import PairTable, build_table

RHAT_WARN, ESS_WARN = 1.05, 100


@dataclass
class PairPosterior:
    """Posterior draws for one (candidate, dimension) comparison, chains merged."""

    candidate: str
    dimension: str
    segments: list[str]
    shares: np.ndarray
    incumbent_rate: np.ndarray  # [draws, S]
    candidate_rate: np.ndarray
    delta: np.ndarray
    delta_overall: np.ndarray  # [draws]
    judge: dict[str, dict[str, Any]]
    fit: PairFit
    items: list[str]  # paired items, in table order (cell_of_item aligns with it)


@dataclass
class Assessment:
    """The result of ``assess``: the decision JSON plus the posterior draws behind it."""

    spec: MigrationSpec
    result: dict[str, Any]
    pairs: dict[tuple[str, str], PairPosterior]
    next_labels: list[dict[str, Any]] = field(default_factory=list)
    labels_needed: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.result["verdict"]

    def to_json(self) -> dict[str, Any]:
        return self.result

    @property
    def exit_code(self) -> int:
        return {dec.GO: 0, dec.NO_GO: 1, dec.NEED_LABELS: 3}[self.verdict]


# --------------------------------------------------------------------------- indexing records


@dataclass
class _Index:
    by_model: dict[str, dict[str, Record]]
    segment_of: dict[str, str]
    lead: dict[str, Record]  # per item, the record (incumbent's first) that gives segment and weight


def _segment_key(rec: Record, segment_by: list[str]) -> str:
    if not segment_by:
        return "all"
    parts = []
    for name in segment_by:
        value = rec.segment.get(name)
        if value is None:
            raise DataError(
                f"item '{rec.item}' (model '{rec.model}'): its segment has no field '{name}', "
                f"which the spec's segment_by lists; add it to the record or change segment_by"
            )
        parts.append(str(value))
    return "/".join(parts)


def _index(spec: MigrationSpec, records: list[Record]) -> _Index:
    by_model: dict[str, dict[str, Record]] = defaultdict(dict)
    known = set(spec.models)
    for rec in records:
        if rec.model not in known:
            continue
        if rec.item in by_model[rec.model]:
            raise DataError(
                f"item '{rec.item}' has two records for model '{rec.model}'; "
                "each model answers an item once (merge their labels into one row)"
            )
        by_model[rec.model][rec.item] = rec
    for model in spec.models:
        if not by_model.get(model):
            seen = sorted({r.model for r in records})[:8]
            role = "incumbent" if model == spec.incumbent else "candidate"
            raise DataError(f"no records for the {role} '{model}'; models in the records: {seen}")
    lead: dict[str, Record] = {}
    for model in spec.models:  # incumbent first: its record gives the item's segment and weight
        for item, rec in by_model[model].items():
            lead.setdefault(item, rec)
    segment_of = {item: _segment_key(rec, spec.segment_by) for item, rec in lead.items()}
    return _Index(dict(by_model), segment_of, lead)


def _shares(spec: MigrationSpec, idx: _Index, segments: list[str]) -> np.ndarray:
    given = spec.traffic.shares
    if given:
        missing = [s for s in segments if s not in given]
        if missing:
            raise DataError(
                f"traffic.shares has no share for segment '{missing[0]}' (segments in the records: "
                f"{segments}); give every segment a share or remove traffic.shares"
            )
        unseen = [s for s in given if s not in segments and given[s] > 0]
        if unseen:
            raise DataError(
                f"traffic.shares names segment '{unseen[0]}', but no paired record falls in it; "
                f"segments in the records: {segments}"
            )
        out = np.array([given[s] for s in segments], float)
    else:
        weight: dict[str, float] = defaultdict(float)
        for item, seg in idx.segment_of.items():
            rec = idx.lead[item]
            weight[seg] += rec.weight if rec.weight is not None else 1.0
        out = np.array([weight[s] for s in segments], float)
    return out / out.sum()


# --------------------------------------------------------------------------- tables


def _scales(spec: MigrationSpec, idx: _Index) -> dict[str, SignalScale]:
    out = {}
    for name, dim in spec.dimensions.items():
        values = [rec.signals.get(dim.signal) for recs in idx.by_model.values() for rec in recs.values()]
        out[name] = infer_scale(values, name, dim.levels, dim.bins)
    return out


def _label_counts(rec: Record, dimension: str) -> tuple[int, int]:
    votes = rec.labels.get(dimension) or []
    return sum(votes), len(votes)


def _pair_table(
    spec: MigrationSpec, idx: _Index, candidate: str, dimension: str, scale: SignalScale, segments: list[str]
) -> tuple[PairTable, list[str]]:
    inc, cand = idx.by_model[spec.incumbent], idx.by_model[candidate]
    items = sorted(set(inc) & set(cand))
    if not items:
        raise DataError(
            f"no item is answered by both the incumbent '{spec.incumbent}' and '{candidate}'; "
            "records pair by their 'item' field"
        )
    signal = spec.dimensions[dimension].signal
    seg_pos = {s: i for i, s in enumerate(segments)}
    cols: dict[str, list[int]] = defaultdict(list)
    for item in items:
        cols["seg"].append(seg_pos[idx.segment_of[item]])
        for m, rec in enumerate((inc[item], cand[item])):
            cols[f"a{m}"].append(scale.level(rec.signals.get(signal)))
            pos, tot = _label_counts(rec, dimension)
            cols[f"pos{m}"].append(pos)
            cols[f"tot{m}"].append(tot)
    table = build_table(
        segments,
        np.array(cols["seg"]),
        scale.levels,
        np.array(cols["a0"]),
        np.array(cols["a1"]),
        np.array(cols["pos0"]),
        np.array(cols["tot0"]),
        np.array(cols["pos1"]),
        np.array(cols["tot1"]),
    )
    return table, items


# --------------------------------------------------------------------------- summaries


def _judge_summary(phi: np.ndarray, scale: SignalScale) -> dict[str, Any]:
    """Posterior-mean confusion of the judge for one model; phi: [draws, 2, K]."""
    mean = phi.mean(axis=0)
    if scale.kind == "binary":
        return {
            "sensitivity": float(mean[1, 1]),
            "specificity": float(mean[0, 0]),
            "passes_bad": float(mean[0, 1]),
            "fails_good": float(mean[1, 0]),
        }
    return {
        "confusion": {"acceptable": [float(x) for x in mean[1]], "not_acceptable": [float(x) for x in mean[0]]},
        "levels": scale.describe(),
    }


def _summary(
    pp: PairPosterior, s: int | None, margin: float, confidence: float, monthly: float | None
) -> dict[str, Any]:
    if s is None:
        d, inc, cand = pp.delta_overall, pp.incumbent_rate @ pp.shares, pp.candidate_rate @ pp.shares
        extra = np.maximum(0.0, -pp.delta) @ pp.shares
        net = -pp.delta_overall
    else:
        d, inc, cand = pp.delta[:, s], pp.incumbent_rate[:, s], pp.candidate_rate[:, s]
        extra = np.maximum(0.0, -pp.delta[:, s]) * pp.shares[s]
        net = -pp.delta[:, s] * pp.shares[s]
    j = dec.judge_delta(d, margin, confidence)
    out: dict[str, Any] = {
        "delta": dec.interval(d, confidence).as_dict(),
        "incumbent": dec.interval(inc, confidence).as_dict(),
        "candidate": dec.interval(cand, confidence).as_dict(),
        "p_noninferior": j.p_noninferior,
        "p_superior": j.p_superior,
        "p_regression": j.p_regression,
        "verdict": j.verdict,
        "extra_failures_per_month": None,
        "net_failures_per_month": None,
    }
    if monthly is not None:
        out["extra_failures_per_month"] = dec.interval(extra * monthly, confidence).as_dict()
        out["net_failures_per_month"] = dec.interval(net * monthly, confidence).as_dict()
    return out


def _required_segments(spec: MigrationSpec, segments: list[str]) -> list[str]:
    if spec.required_segments == "all":
        return list(segments)
    unknown = [s for s in spec.required_segments if s not in segments]
    if unknown:
        raise DataError(
            f"required_segments names '{unknown[0]}', which is not a segment of the records "
            f"({segments}); segment keys join the segment_by values with '/'"
        )
    return list(spec.required_segments)


# --------------------------------------------------------------------------- the entry point


def assess(
    spec: MigrationSpec,
    records: list[Record],
    *,
    seed: int | None = None,
    draws: int = 250,
    warmup: int = 300,
    chains: int = 4,
    next_count: int = 50,
) -> Assessment:
    """Fit the measurement model for every candidate x dimension and decide."""
    idx = _index(spec, records)
    segments = sorted(set(idx.segment_of.values()))
    shares = _shares(spec, idx, segments)
    scales = _scales(spec, idx)
    keys: list[tuple[str, str]] = []
    tables: list[PairTable] = []
    items_of: dict[tuple[str, str], list[str]] = {}
    for candidate in spec.candidates:
        for dimension in spec.dimensions:
            table, items = _pair_table(spec, idx, candidate, dimension, scales[dimension], segments)
            keys.append((candidate, dimension))
            tables.append(table)
            items_of[(candidate, dimension)] = items
    settings = FitSettings(chains=chains, warmup=warmup, draws=draws, seed=spec.seed if seed is None else seed)
    fits = fit_pairs(tables, settings)

    conf, monthly = spec.confidence, spec.traffic.monthly_interactions
    required = _required_segments(spec, segments)
    pairs: dict[tuple[str, str], PairPosterior] = {}
    candidates_out: dict[str, Any] = {}
    judge_out: dict[str, dict[str, Any]] = defaultdict(dict)
    rhats, esses, warn = [], [], []
    targets: list[LabelTarget] = []
    for (candidate, dimension), fit in zip(keys, fits, strict=True):
        scale = scales[dimension]
        flat = PairFit.flat
        phi = flat(fit.phi)
        judge = {spec.incumbent: _judge_summary(phi[:, 0], scale), candidate: _judge_summary(phi[:, 1], scale)}
        pp = PairPosterior(
            candidate,
            dimension,
            segments,
            shares,
            flat(fit.incumbent_rate),
            flat(fit.candidate_rate),
            flat(fit.delta),
            flat(fit.overall(fit.delta, shares)),
            judge,
            fit,
            items_of[(candidate, dimension)],
        )
        pairs[(candidate, dimension)] = pp
        judge_out[dimension].setdefault(spec.incumbent, judge[spec.incumbent])
        judge_out[dimension][candidate] = judge[candidate]
        for series in [fit.overall(fit.delta, shares)] + [fit.delta[..., s] for s in range(len(segments))]:
            rhats.append(rhat(series))
            esses.append(ess(series))
        margin = spec.dimensions[dimension].margin
        overall = _summary(pp, None, margin, conf, monthly)
        segs = {seg: _summary(pp, s, margin, conf, monthly) for s, seg in enumerate(segments)}
        req = [segs[s]["verdict"] for s in required] if len(segments) > 1 else []
        dim_out = {
            "verdict": dec.dimension_verdict(overall["verdict"], req),
            "overall": overall,
            "segments": segs,
            "required": spec.dimensions[dimension].required,
            "signal": scale.describe(),
            "labelled": {spec.incumbent: fit.table.labelled(0), candidate: fit.table.labelled(1)},
            "paired_items": fit.table.items,
        }
        candidates_out.setdefault(candidate, {"dimensions": {}})["dimensions"][dimension] = dim_out
        if spec.dimensions[dimension].required:
            undecided = [("overall", None)] if overall["verdict"] == dec.INCONCLUSIVE else []
            undecided += [
                (seg, segments.index(seg))
                for seg in required
                if len(segments) > 1 and segs[seg]["verdict"] == dec.INCONCLUSIVE
            ]
            targets.append(LabelTarget(candidate, dimension, fit, shares, margin, conf, undecided))

    for candidate, cand_out in candidates_out.items():
        verdicts = []
        for dimension, dim_out in cand_out["dimensions"].items():
            if not spec.dimensions[dimension].required:
                continue
            verdicts.append(dim_out["overall"]["verdict"])
            if len(segments) > 1:
                verdicts += [dim_out["segments"][s]["verdict"] for s in required]
        cand_out["verdict"] = dec.combine(verdicts)
        cand_out["summary"] = plain_words(spec, candidate, cand_out, segments)
        candidates_out[candidate] = {"verdict": cand_out.pop("verdict"), **cand_out}

    needed = labels_needed(targets)
    ranked = rank_labels(targets, next_count)
    next_labels = [
        {"item": item, "model": model, "dimension": dimension, "value": value}
        for item, model, dimension, value in _items_for(ranked, pairs, spec)
    ]
    rhat_max, ess_min = float(np.nanmax(rhats)), float(np.nanmin(esses))
    if rhat_max > RHAT_WARN or ess_min < ESS_WARN:
        msg = (
            f"the sampler may not have converged (R-hat max {rhat_max:.3f}, ESS min {ess_min:.0f}); "
            "rerun with more --draws/--warmup before acting on a borderline verdict"
        )
        warn.append(msg)
        warnings.warn(msg, stacklevel=2)
    result = {
        "verdict": dec.overall_verdict([c["verdict"] for c in candidates_out.values()]),
        "confidence": conf,
        "incumbent": spec.incumbent,
        "segment_by": spec.segment_by,
        "segments": {s: float(w) for s, w in zip(segments, shares, strict=True)},
        "monthly_interactions": monthly,
        "candidates": candidates_out,
        "labels_needed": needed,
        "next_labels": next_labels,
        "diagnostics": {
            "rhat_max": rhat_max,
            "ess_min": ess_min,
            "judge": dict(judge_out),
            "chains": chains,
            "draws": draws,
            "warmup": warmup,
            "seed": settings.seed,
            "divergences": int(sum(f.divergences for f in fits)),
            "warnings": warn,
        },
    }
    return Assessment(spec, result, pairs, next_labels, needed, warn)


def _items_for(ranked: list, pairs: dict[tuple[str, str], PairPosterior], spec: MigrationSpec):
    """Expand ranked (candidate, dimension, model, cell, value) into concrete unlabelled items."""
    taken: set[tuple[str, str, str]] = set()
    cursor: dict[tuple[str, str, int, int], int] = defaultdict(int)
    for r in ranked:
        pp = pairs[(r.candidate, r.dimension)]
        model = spec.incumbent if r.model == 0 else r.candidate
        members = np.flatnonzero(pp.fit.table.cell_of_item == r.cell)
        key = (r.candidate, r.dimension, r.model, r.cell)
        while cursor[key] < len(members):
            item = pp.items[members[cursor[key]]]
            cursor[key] += 1
            if (item, model, r.dimension) in taken:
                continue
            taken.add((item, model, r.dimension))
            yield item, model, r.dimension, r.value
            break


def _round_count(x: float) -> str:
    """2 significant figures, with thousands separators: 2,347,332 -> '2,300,000'."""
    if x < 100:
        return f"{x:,.0f}"
    digits = len(str(int(x))) - 2
    return f"{round(x, -digits):,.0f}"


def plain_words(spec: MigrationSpec, candidate: str, cand_out: dict[str, Any], segments: list[str]) -> str:
    """One line a person can read: 'cand-a: GO — correctness non-inferior (P=0.98) in all 3 regions; ...'."""
    parts = []
    where = (
        f"overall and in all {len(segments)} segments ({'/'.join(spec.segment_by)})" if len(segments) > 1 else "overall"
    )
    net_total = 0.0
    have_net = False
    for dimension, d in cand_out["dimensions"].items():
        o = d["overall"]
        if d["verdict"] in (dec.SUPERIOR, dec.NONINFERIOR):
            parts.append(f"{dimension} {d['verdict']} (P={o['p_noninferior']:.2f}) {where}")
        elif d["verdict"] == dec.REGRESSION:
            worst = min(d["segments"].items(), key=lambda kv: kv[1]["delta"]["mean"])
            at = f" (worst: {worst[0]}, {worst[1]['delta']['mean']:+.1%})" if len(segments) > 1 else ""
            parts.append(f"{dimension} regresses by {-o['delta']['mean']:.1%}{at}")
        else:
            weak = [(s, v) for s, v in d["segments"].items() if v["verdict"] == dec.INCONCLUSIVE]
            if o["verdict"] == dec.INCONCLUSIVE or not weak or len(segments) == 1:
                parts.append(f"{dimension} undecided overall (P(non-inferior)={o['p_noninferior']:.2f})")
            else:
                detail = ", ".join(f"{s} (P(non-inferior)={v['p_noninferior']:.2f})" for s, v in weak[:3])
                parts.append(f"{dimension} undecided in {detail}")
        if o.get("net_failures_per_month"):
            net_total += o["net_failures_per_month"]["mean"]
            have_net = True
    line = f"{candidate}: {cand_out['verdict']} — " + "; ".join(parts)
    if have_net:
        word = "more" if net_total > 0 else "fewer"
        line += f"; ~{_round_count(abs(net_total))} {word} failures/month"
    return line
