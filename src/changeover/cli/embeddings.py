"""CLI commands for the embedding migration: `changeover embeddings status|reembed|compare|
fit-adapter|switch|cleanup|search`.

Settings come from the spec's ``embeddings:`` section (``--spec``) or, without
a spec, from flags (``--old``, ``--new``, ``--corpus``, ...); a flag beats the spec.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from changeover.cli.common import DB_OPTION, console, write_json
from changeover.cli.engine_options import ENGINE_OPTION, RAY_ADDRESS_OPTION
from changeover.errors import SpecError

if TYPE_CHECKING:  # the embedding stack (numpy, models, SQL tables) loads inside the commands
    from changeover.embeddings.compare import Comparison
    from changeover.embeddings.config import EmbeddingsConfig
    from changeover.embeddings.index import VectorIndex
    from changeover.embeddings.service import QuerySet

sub = typer.Typer(help="Migrate the embedding index: re-embed, compare, adapt, switch, clean up.", no_args_is_help=True)

SPEC = typer.Option(None, "--spec", help="Migration spec with an `embeddings:` section.")
OLD = typer.Option(None, "--old", help="Incumbent embedding model (default: spec embeddings.incumbent).")
NEW = typer.Option(None, "--new", help="Candidate embedding model (default: spec embeddings.candidate).")
BACKEND = typer.Option(None, "--backend", help="Vector backend: numpy (default) or pgvector.")
CORPUS = typer.Option(None, "--corpus", help="Documents JSONL (_id, text, title).")
QUERIES = typer.Option(None, "--queries", help="Queries JSONL (_id, text): the common ones from logs.")
QRELS = typer.Option(None, "--qrels", help="Relevance judgments TSV (query-id, corpus-id, score).")
JSON_OUT = typer.Option(None, "--json", help="Also write the result as JSON to this path.")
ACTOR = typer.Option(None, "--actor", help="Who does this (default: $CHANGEOVER_ACTOR or the login name).")
REASON = typer.Option(None, "--reason", help="Why (kept in the event log).")
K = typer.Option(None, "--k", help="Top-k for overlap and quality (default 10).")
EF_SEARCH = typer.Option(
    None, "--ef-search", min=1, max=1000, help="pgvector: HNSW ef_search for this run (default: spec embeddings.hnsw)."
)


@dataclass
class Context:
    config: EmbeddingsConfig
    index: VectorIndex
    actor: str

    def need(self, field: str, flag: str) -> object:
        value = getattr(self.config, field, None)
        if value is None:
            raise SpecError(f"{flag} is required (or give --spec with embeddings.{field})")
        return value

    @property
    def aliases(self) -> dict[str, str]:
        return {
            k: v
            for k, v in {
                "old": self.config.incumbent,
                "incumbent": self.config.incumbent,
                "new": self.config.candidate,
                "candidate": self.config.candidate,
            }.items()
            if v
        }


def _context(spec: Path | None, db: str | None, backend: str | None, actor: str | None, **overrides: object) -> Context:
    from changeover.config import load_spec
    from changeover.embeddings.config import EmbeddingsConfig
    from changeover.embeddings.index import open_index
    from changeover.store import open_store

    config = EmbeddingsConfig()
    if spec is not None:  # a spec with only an `embeddings:` section is enough
        loaded = load_spec(spec, core=False)
        config = loaded.require("embeddings", EmbeddingsConfig, "changeover embeddings").resolved(spec.resolve().parent)
    ef_search = overrides.pop("ef_search", None)
    given = {k: v for k, v in overrides.items() if v is not None}
    config = config.model_copy(update=given)
    if ef_search is not None:  # --ef-search beats embeddings.hnsw.ef_search
        config = config.model_copy(update={"hnsw": config.hnsw.model_copy(update={"ef_search": ef_search})})
    chosen = backend or config.backend
    who = actor or os.environ.get("CHANGEOVER_ACTOR") or getpass.getuser()
    return Context(config, open_index(open_store(db), chosen, config.hnsw), who)


def _fmt(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


@sub.command("status")
def status_cmd(spec: Path = SPEC, db: str = DB_OPTION, backend: str = BACKEND, json_out: Path = JSON_OUT) -> None:
    """Indexes per model version, jobs, failures, what serves, active adapters (technical debt)."""
    from changeover.embeddings.status import status

    ctx = _context(spec, db, backend, None)
    st = status(ctx.index, ctx.config.stability)
    table = Table(title=f"embedding indexes ({st['backend']}, {st['store']})")
    for col in ("index (model@version)", "vectors", "of", "job", "failed", "serving"):
        table.add_column(col)
    for v in st["indexes"]:
        table.add_row(
            v["version"],
            str(v["vectors"]),
            _fmt(v["total"]),
            v["state"] + (f" ({v['holder']})" if v.get("holder") else ""),
            ", ".join(v["failed"][:5]) + (" ..." if len(v["failed"]) > 5 else "") or "-",
            "[bold green]yes[/]" if v["serving"] else "",
        )
    console.print(table)
    console.print(f"serving: [bold]{st['serving'] or 'nothing yet'}[/]")
    for a in st["adapters"]:
        console.print(
            f"[yellow]adapter #{a['id']} active[/] {a['query_version']} -> {a['index_version']} "
            f"({a['form']}; top-k overlap with the re-indexed retrieval {_fmt(a['kept_share'])}): "
            f"{a['note']}"
        )
    if st["cleanup"]:
        c = st["cleanup"]
        state = "allowed now" if c["allowed_now"] else f"allowed from {c['cleanup_allowed_from']}"
        console.print(
            f"cleanup of {', '.join(c['removable']) or 'nothing'}: {state} (stability period {c['stability_period']})"
        )
    if json_out:
        write_json(st, json_out)


@sub.command("reembed")
def reembed_cmd(
    to: str = typer.Option(..., "--to", help="Model to embed with (name or alias)."),
    corpus: Path = CORPUS,
    batch: int = typer.Option(None, "--batch", min=1),
    rate: str = typer.Option(None, "--rate", help="Rate limit, e.g. 600/min; 'off' for none."),
    limit: int = typer.Option(None, "--limit", min=1, help="Embed at most N documents this run."),
    retries: int = typer.Option(None, "--retries", min=0, help="Retries of a transient encoder error per batch."),
    wait: float = typer.Option(
        0.0, "--wait", min=0, help="If another run of this version is going, wait up to this many seconds for it."
    ),
    lease: str = typer.Option(
        None, "--lease", help="Lease lifetime without renewal (default 30s); past it a dead run shows 'interrupted'."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    spec: Path = SPEC,
    old: str = OLD,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
    json_out: Path = JSON_OUT,
    engine: str = ENGINE_OPTION,
    ray_address: str = RAY_ADDRESS_OPTION,
) -> None:
    """Embed every document with a model into its own index rows (resumable, rate-limited, one run per model)."""
    from changeover.embeddings.service import reembed_corpus
    from changeover.engines import choose_engine

    chosen = choose_engine(engine, ray_address)  # Ray missing: exit 2 before anything runs

    ctx = _context(
        spec, db, backend, actor, corpus=corpus, batch=batch, rate=rate, retries=retries, incumbent=old, lease=lease
    )
    corpus_path = Path(str(ctx.need("corpus", "--corpus")))
    run = reembed_corpus(
        ctx.index,
        ctx.config,
        ctx.aliases.get(to.lower(), to),
        corpus_path,
        actor=ctx.actor,
        reason=reason,
        limit=limit,
        progress=progress,
        wait=wait,
        engine=chosen,
    )
    result, key = run.result, run.encoder.key
    if run.empty:
        console.print(
            f"[yellow]{len(run.empty)} empty documents (no text, no title) cannot be embedded and are "
            f"not indexed:[/] {', '.join(run.empty[:20])}"
        )
    if run.now_serving:
        console.print(f"{key} now serves (first complete index)")
    console.print(
        f"{key}: embedded {result.embedded} this run, {result.already} before, "
        f"{result.already + result.embedded} of {result.total} "
        f"({result.docs_per_second:.1f} docs/s, {result.seconds:.1f}s)"
    )
    if result.failed:
        console.print(f"[bold red]{len(result.failed)} documents failed[/] (run again to retry them):")
        for doc_id, err in sorted(result.failed.items())[:20]:
            console.print(f"  {doc_id}: {err}", highlight=False)
    if json_out:
        write_json(result.to_json(), json_out)
    if result.failed:
        raise typer.Exit(1)


def _queries_both(ctx: Context) -> QuerySet:
    from changeover.embeddings.service import embed_queries

    path = Path(str(ctx.need("queries", "--queries")))
    return embed_queries(path, str(ctx.need("incumbent", "--old")), str(ctx.need("candidate", "--new")))


@sub.command("compare")
def compare_cmd(
    queries: Path = QUERIES,
    qrels: Path = QRELS,
    k: int = K,
    ef_search: int = EF_SEARCH,
    spec: Path = SPEC,
    old: str = OLD,
    new: str = NEW,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
    json_out: Path = JSON_OUT,
) -> None:
    """Top-k overlap old vs new on the queries, its verdict, recall/nDCG with judgments (an event);
    with an HNSW index, its own recall against exact search, apart."""
    from changeover.embeddings.service import compare_models

    ctx = _context(
        spec, db, backend, actor, incumbent=old, candidate=new, queries=queries, qrels=qrels, k=k, ef_search=ef_search
    )
    cfg = ctx.config
    query_set = _queries_both(ctx)
    result = compare_models(ctx.index, cfg, query_set, actor=ctx.actor, reason=reason)
    qs = query_set.queries
    rep = result.overlap
    console.print(
        f"top-{rep.k} overlap {query_set.old.name} vs {query_set.new.name} on {len(qs)} queries: "
        f"mean [bold]{rep.mean:.3f}[/] -> [bold]{rep.verdict}[/] "
        f"(preserves >= {cfg.thresholds.preserves}, investigate < {cfg.thresholds.investigate})"
    )
    console.print("quantiles: " + ", ".join(f"{n} {v:.2f}" for n, v in rep.quantiles().items()))
    console.print("histogram: " + ", ".join(f"{n}: {c}" for n, c in rep.histogram().items()))
    worst = Table(title="lowest-overlap queries")
    worst.add_column("query")
    worst.add_column("overlap")
    worst.add_column("text")
    texts = {q.id: q.text for q in qs}
    for qid, o in rep.worst(10):
        worst.add_row(qid, f"{o:.2f}", texts[qid][:80])
    console.print(worst)
    if result.quality:
        qt = Table(title=f"retrieval quality ({next(iter(result.quality.values()))['judged_queries']} judged queries)")
        for col in ("index", f"recall@{rep.k}", f"ndcg@{rep.k}"):
            qt.add_column(col)
        for name, m in result.quality.items():
            qt.add_row(name, f"{m[f'recall@{rep.k}']:.3f}", f"{m[f'ndcg@{rep.k}']:.3f}")
        console.print(qt)
    if result.index_recall:
        _print_index_accuracy(result, ctx.index.backend, query_set)
    if result.adapter:
        console.print(
            f"active adapter #{result.adapter['id']} ({result.adapter['form']}): overlap with the "
            f"re-indexed top-{rep.k} {result.adapter['overlap_with_new']:.3f}"
        )
    if json_out:
        write_json(result.to_json(), json_out)


def _print_index_accuracy(result: Comparison, backend: str, query_set: QuerySet) -> None:
    """The approximate index's own error, apart from the model change measured above on exact search."""
    import numpy as np

    acc, k = result.index, result.overlap.k
    table = Table(title=f"{backend} index vs exact search (overlap and quality above are on exact search)")
    for col in ("index", "model", "m", "ef_construction", "ef_search", f"recall@{k} vs exact", "p05", "median"):
        table.add_column(col)
    models = {"old": query_set.old.key, "new": query_set.new.key}
    for name, recall in acc.recall.items():
        s, q = acc.settings.get(name, {}), np.quantile(recall, [0.05, 0.5])
        table.add_row(
            name,
            models[name],
            *(str(s.get(p, "?")) for p in ("m", "ef_construction", "ef_search")),
            f"[bold]{recall.mean():.3f}[/]",
            f"{q[0]:.2f}",
            f"{q[1]:.2f}",
        )
    console.print(table)
    if acc.served_overlap is not None:
        console.print(
            f"top-{k} overlap old vs new as the indexes serve them: {acc.served_overlap.mean():.3f} "
            f"(exact: {result.overlap.mean:.3f}; the difference is index error, not the model)"
        )


@sub.command("fit-adapter")
def fit_adapter_cmd(
    pairs: int = typer.Option(None, "--pairs", min=20, help="Paired documents to fit on."),
    queries: Path = QUERIES,
    qrels: Path = QRELS,
    k: int = K,
    forms: str = typer.Option(
        None, "--forms", help="Forms to try, comma-separated (default all: procrustes,affine,lowrank)."
    ),
    activate: bool = typer.Option(True, "--activate/--no-activate"),
    spec: Path = SPEC,
    old: str = OLD,
    new: str = NEW,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
    json_out: Path = JSON_OUT,
) -> None:
    """Fit a new-query -> old-space map on paired documents; choose the form by held-out overlap."""
    from changeover.embeddings.linear_maps import FORMS
    from changeover.embeddings.service import fit_and_store_adapter

    ctx = _context(
        spec, db, backend, actor, incumbent=old, candidate=new, queries=queries, qrels=qrels, k=k, pairs=pairs
    )
    chosen_forms = [f.strip() for f in (forms or ",".join(FORMS)).split(",") if f.strip()]
    bad = [f for f in chosen_forms if f not in FORMS]
    if bad:
        raise SpecError(f"--forms: unknown form(s) {', '.join(bad)}; choose from {', '.join(FORMS)}")
    query_set = _queries_both(ctx)
    fit = fit_and_store_adapter(
        ctx.index, ctx.config, query_set, forms=chosen_forms, activate=activate, actor=ctx.actor, reason=reason
    )
    sel, metrics = fit.selection, fit.metrics
    table = Table(
        title=f"top-{ctx.config.k} overlap with the re-indexed retrieval: maps fit on {sel.train} pairs, "
        f"scored over {sel.pool} documents"
    )
    table.add_column("form")
    table.add_column("overlap")
    for label, s in sorted(sel.scores.items(), key=lambda t: -t[1]):
        table.add_row(label + ("  [bold green]<- chosen[/]" if label == sel.chosen.label else ""), f"{s:.3f}")
    console.print(table)
    if "quality_adapted" in metrics:
        console.print(
            "adapted queries on the old index: "
            + ", ".join(f"{n} {_fmt(v)}" for n, v in metrics["quality_adapted"].items())
        )
    console.print(
        f"adapter #{fit.id} {query_set.new.key} -> {query_set.old.key} ({sel.chosen.label}) stored"
        + (" and active: technical debt until the new index serves" if activate else "")
    )
    if json_out:
        write_json({"id": fit.id, "active": activate, **metrics}, json_out)


@sub.command("switch")
def switch_cmd(
    to: str = typer.Option(..., "--to", help="Model (or name@version) whose index should serve."),
    force: bool = typer.Option(False, "--force", help="Serve even an incomplete index."),
    spec: Path = SPEC,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
) -> None:
    """Select the serving index (one flag; instant either way; the other index is kept)."""
    from changeover.embeddings.resolve import resolve_version
    from changeover.embeddings.serving import serving_index, switch

    ctx = _context(spec, db, backend, actor)
    version = resolve_version(to, ctx.index.counts(), ctx.aliases)
    before = serving_index(ctx.index.store)
    flag = switch(ctx.index, version, ctx.actor, reason, force=force)
    console.print(f"serving index: {before or 'none'} -> [bold]{version}[/] (flag version {flag.version})")


@sub.command("cleanup")
def cleanup_cmd(
    index_name: str = typer.Argument(..., metavar="MODEL", help="Model (or name@version) to delete."),
    stability: str = typer.Option(
        None, "--stability", help="Override the spec's stability period (recorded in the cleanup event)."
    ),
    spec: Path = SPEC,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
) -> None:
    """Delete an index that no longer serves, once the serving one has been stable long enough."""
    from changeover.embeddings.config import parse_duration
    from changeover.embeddings.resolve import resolve_version
    from changeover.embeddings.service import cleanup_index

    ctx = _context(spec, db, backend, actor)
    override = parse_duration(stability, "--stability") if stability else None
    version = resolve_version(index_name, ctx.index.counts(), ctx.aliases)
    n = cleanup_index(ctx.index, ctx.config, version, actor=ctx.actor, reason=reason, stability=override)
    console.print(f"deleted index {version} ({n} vectors)")


@sub.command("search")
def search_cmd(
    text: str = typer.Argument(..., help="Query text."),
    query_model: str = typer.Option(
        None,
        "--query-model",
        help="Model that embeds the query (default: the serving index's own). Another model is refused "
        "unless an adapter bridges it.",
    ),
    k: int = typer.Option(10, "--k"),
    spec: Path = SPEC,
    db: str = DB_OPTION,
    backend: str = BACKEND,
) -> None:
    """Search the serving index with the query embedded by the serving model (or by --query-model)."""
    from changeover.embeddings.search import QueryVectors, Retriever
    from changeover.providers.embedders import get_encoder

    ctx = _context(spec, db, backend, None)
    retriever = Retriever(ctx.index)
    if query_model is None:
        hits = retriever.search(text, k)
    else:
        enc = get_encoder(ctx.aliases.get(query_model.lower(), query_model))
        hits = retriever.search(QueryVectors(enc.encode_queries([text]), enc.key), k)
    via = f" via adapter #{hits.adapter_id}" if hits.adapter_id else ""
    console.print(f"index {hits.index_version}{via}:")
    for doc_id, score in zip(hits.ids[0], hits.scores[0], strict=False):
        console.print(f"  {doc_id}  {score:.3f}")


adapter_sub = typer.Typer(help="Adapters (new-model queries on the old index): retire them.", no_args_is_help=True)
sub.add_typer(adapter_sub, name="adapter")


@adapter_sub.command("retire")
def adapter_retire_cmd(
    adapter_id: int = typer.Argument(..., metavar="ID", help="The adapter's number (see `embeddings status`)."),
    spec: Path = SPEC,
    db: str = DB_OPTION,
    backend: str = BACKEND,
    actor: str = ACTOR,
    reason: str = REASON,
) -> None:
    """Deactivate an adapter (an event with actor and reason); its queries then need their own index."""
    from changeover.embeddings.adapter import retire_adapter
    from changeover.embeddings.serving import serving_index

    ctx = _context(spec, db, backend, actor)
    a = retire_adapter(ctx.index.store, adapter_id, ctx.actor, reason)
    console.print(f"adapter #{a.id} {a.query_version} -> {a.index_version} retired")
    if serving_index(ctx.index.store) == a.index_version:
        console.print(
            f"[yellow]note:[/] {a.index_version} still serves, so queries embedded by {a.query_version} are now "
            "refused; switch to the new index (`changeover embeddings switch --to new`) if readers still send them"
        )


def register(app: typer.Typer) -> None:
    """Add `changeover embeddings ...` to the main app."""
    app.add_typer(sub, name="embeddings")
