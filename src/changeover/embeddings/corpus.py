"""Documents, queries and graded relevance judgments, read from BEIR-style files.

- corpus JSONL: ``{"_id", "text", "title"?}``; a document with empty text falls
  back to its title (Cranfield docs 471 and 995 have no abstract).
- queries JSONL: ``{"_id", "text"}``.
- qrels TSV with a header ``query-id corpus-id score``; when the third column is
  Cranfield's ``cleverdon-code`` (1 = complete answer .. 4 = minimal interest,
  -1 = unexplained) the gain is ``5 - code`` and codes <= 0 are dropped.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from changeover.embeddings.errors import CorpusError
from changeover.errors import where
from changeover.records import jsonl_objects


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    id: str
    text: str


def _jsonl(path: Path, what: str) -> list[tuple[int, dict]]:
    if not path.exists():
        raise CorpusError(f"{path}: no such {what} file; pass the right path (JSONL, one object per line)")
    return list(jsonl_objects(path, CorpusError))


def _id(obj: dict, path: Path, line: int) -> str:
    value = obj.get("_id", obj.get("id"))
    if value is None or str(value).strip() == "":
        raise CorpusError(f"{where(path, line, '_id')} is missing; every row needs an id")
    return str(value)


def read_corpus(path: str | Path, limit: int | None = None) -> list[Document]:
    """The non-empty documents of a corpus file, in file order (see ``read_corpus_report``)."""
    return read_corpus_report(path, limit)[0]


def read_corpus_report(path: str | Path, limit: int | None = None) -> tuple[list[Document], list[str]]:
    """(documents with text, ids of documents with neither text nor title); ids must be unique.

    Empty documents cannot be embedded; they are returned separately so the
    caller lists them instead of silently dropping them.
    """
    path = Path(path)
    docs: list[Document] = []
    empty: list[str] = []
    seen: dict[str, int] = {}
    for line, obj in _jsonl(path, "corpus"):
        doc_id = _id(obj, path, line)
        if doc_id in seen:
            raise CorpusError(f"{where(path, line, '_id')}: id {doc_id!r} already used on line {seen[doc_id]}")
        seen[doc_id] = line
        title = str(obj.get("title") or "").strip()
        text = str(obj.get("text") or "").strip()
        if title and not text.startswith(title):
            text = f"{title}. {text}".strip()
        text = text or title
        if not text:
            empty.append(doc_id)
            continue
        docs.append(Document(doc_id, text))
        if limit is not None and len(docs) >= limit:
            break
    return docs, empty


def read_queries(path: str | Path) -> list[Query]:
    path = Path(path)
    out = []
    for line, obj in _jsonl(path, "queries"):
        text = str(obj.get("text") or "").strip()
        if not text:
            raise CorpusError(f"{where(path, line, 'text')} is empty; a query needs text")
        out.append(Query(_id(obj, path, line), text))
    return out


def read_qrels(path: str | Path) -> dict[str, dict[str, float]]:
    """query id -> {document id: gain > 0}."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such qrels file; pass a TSV 'query-id corpus-id score'")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise CorpusError(f"{path}: empty qrels file")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    cleverdon = len(header) >= 3 and "cleverdon" in header[2]
    start = 1 if header[0] in ("query-id", "query_id", "qid") else 0
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for n, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise CorpusError(f"{where(path, n)}: expected 3 tab-separated columns, got {len(parts)}")
        try:
            score = float(parts[2])
        except ValueError:
            raise CorpusError(
                f"{where(path, n, header[2] if len(header) > 2 else 'score')}: {parts[2]!r} is not a number"
            ) from None
        gain = (5.0 - score if score > 0 else 0.0) if cleverdon else score
        if gain > 0:
            out[parts[0].strip()][parts[1].strip()] = gain
    return dict(out)
