"""`tinylm eval`: perplexity (decoders), teacher agreement and retrieval metrics (embedding models).

Everything runs through `tinylm.load`, so any backend can be evaluated (`EvalOptions(backend=...)`).

Perplexity: each record (text + end token; chats rendered by the template) is cut into windows of
at most the model's context; perplexity = exp(total NLL / predicted tokens).

Retrieval file (JSON Lines), one object per line, documents and queries in any order:

    {"type": "document", "id": "d1", "text": "To track your order, open ..."}
    {"type": "query", "id": "q1", "text": "where is my parcel", "relevant": ["d1", "d7"]}

Every document is ranked for every query by cosine similarity; metrics: MRR (mean of 1 / rank of the
first relevant document) and top-k accuracy (a relevant document among the first k).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .data import read_records, record_texts
from .errors import DataError

__all__ = [
    "EvalOptions",
    "PerplexityResult",
    "RetrievalResult",
    "RetrievalSet",
    "perplexity",
    "load_retrieval",
    "retrieval_metrics",
    "retrieval",
    "agreement",
    "write_card_section",
]


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How every evaluation loads the model and reads its data (one object for perplexity, retrieval, agreement)."""

    backend: str | None = None  # None: tinylm's usual choice
    device: str | None = None
    precision: str | None = None  # the evaluated model's; a teacher loads at its own default
    fields: Sequence[str] = ()  # the record fields that hold the text (data files)
    max_records: int | None = None  # read at most this many records


@dataclass(kw_only=True)
class PerplexityResult:
    perplexity: float
    nll: float  # mean per predicted token
    tokens: int
    records: int
    backend: str


@dataclass(kw_only=True)
class RetrievalSet:
    documents: dict[str, str]
    queries: dict[str, str]
    relevant: dict[str, set[str]]


@dataclass(kw_only=True)
class RetrievalResult:
    mrr: float
    top_k: dict[int, float] = field(default_factory=dict)
    queries: int = 0
    documents: int = 0


def _open(model, options: EvalOptions):
    import tinylm

    from .common import open_source

    path = open_source(model).path
    return tinylm.load(path, backend=options.backend, device=options.device, precision=options.precision)


def _records(data: Sequence[Path], options: EvalOptions) -> list:
    return read_records(data, fields=options.fields, limit=options.max_records)


def perplexity(model: str | Path, data: Sequence[Path], options: EvalOptions = EvalOptions()) -> PerplexityResult:
    """exp(mean next-token NLL) of `model` on `data`."""
    from .examples import Codec

    records = _records(data, options)
    with _open(model, options) as m:
        codec = Codec(m.path)
        window = m.context_length
        total, count = 0.0, 0
        for record in records:
            ids = codec.record(record, assistant_only=False).ids
            for start in range(0, max(1, len(ids) - 1), window):
                chunk = ids[start : start + window + 1]
                if len(chunk) < 2:
                    continue
                logits = m.logits(chunk[:-1].tolist()).astype(np.float64)  # (T, V)
                top = logits.max(-1, keepdims=True)
                logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
                total -= float(logp[np.arange(len(chunk) - 1), chunk[1:]].sum())
                count += len(chunk) - 1
        backend_name = m.backend
    if not count:
        raise DataError("no tokens to score. Fix: pass non-empty text.")
    return PerplexityResult(
        perplexity=float(np.exp(total / count)),
        nll=total / count,
        tokens=count,
        records=len(records),
        backend=backend_name,
    )


def load_retrieval(path: Path) -> RetrievalSet:
    """Read a retrieval file (format in the module docs); `DataError` on a malformed one."""
    docs: dict[str, str] = {}
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    if not Path(path).is_file():
        raise DataError(f"no retrieval file at {path}. Fix: pass a JSONL file of documents and queries.")
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kind, key, text = obj["type"], str(obj["id"]), str(obj["text"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(
                f"{path}:{n}: expected {{'type': 'document'|'query', 'id': ..., 'text': ...}} ({e}). "
                "Fix: see the format in tinylm_torch.toolchain.evaluate."
            ) from None
        if kind == "document":
            docs[key] = text
        elif kind == "query":
            queries[key] = text
            relevant[key] = {str(d) for d in obj.get("relevant", [])}
        else:
            raise DataError(f"{path}:{n}: unknown type {kind!r}. Fix: use 'document' or 'query'.")
    missing = {d for r in relevant.values() for d in r} - set(docs)
    if not docs or not queries or missing or not all(relevant.values()):
        raise DataError(
            f"{path}: needs documents, and queries that each name relevant documents "
            f"({len(docs)} documents, {len(queries)} queries, unknown ids: {sorted(missing)[:5]}). "
            "Fix: give every query a 'relevant' list of existing document ids."
        )
    return RetrievalSet(documents=docs, queries=queries, relevant=relevant)


def retrieval_metrics(
    query_vecs: np.ndarray, doc_vecs: np.ndarray, relevant: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)
) -> RetrievalResult:
    """MRR and top-k accuracy for unit query vectors (Q, H) against unit document vectors (D, H)."""
    scores = query_vecs @ doc_vecs.T  # (Q, D)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = []
    for q, rel in enumerate(relevant):
        positions = np.nonzero(np.isin(order[q], list(rel)))[0]
        ranks.append(int(positions[0]) + 1)
    ranks_a = np.asarray(ranks)
    return RetrievalResult(
        mrr=float(np.mean(1.0 / ranks_a)),
        top_k={k: float(np.mean(ranks_a <= k)) for k in ks},
        queries=len(relevant),
        documents=doc_vecs.shape[0],
    )


def retrieval(model: str | Path, path: Path, options: EvalOptions = EvalOptions()) -> RetrievalResult:
    """Retrieval metrics of embedding model `model` on the retrieval file `path`."""
    rs = load_retrieval(path)
    doc_ids = list(rs.documents)
    index = {d: i for i, d in enumerate(doc_ids)}
    with _open(model, options) as m:
        docs = m.embed([rs.documents[d] for d in doc_ids])
        queries = m.embed(list(rs.queries.values()))
    return retrieval_metrics(queries, docs, [{index[d] for d in rs.relevant[q]} for q in rs.queries])


def agreement(
    model: str | Path, teacher: str | Path, data: Sequence[Path], options: EvalOptions = EvalOptions()
) -> float:
    """Mean cosine between the model's and the teacher's embeddings of the texts in `data` (the teacher's
    projected by the distillation PCA when the widths differ)."""
    from .distill import PROJECTION_FILE

    texts = record_texts(_records(data, options))
    with _open(model, options) as m:
        ours = m.embed(texts)
        projection = m.path / PROJECTION_FILE
    with _open(teacher, replace(options, precision=None)) as t:  # the reference at its own default precision
        theirs = t.embed(texts)
    if ours.shape[1] != theirs.shape[1]:
        if not projection.is_file():
            raise DataError(
                f"the model is {ours.shape[1]} wide and the teacher {theirs.shape[1]}, and the model has no "
                f"{PROJECTION_FILE}. Fix: compare models of the same width, or distill with tinylm distill."
            )
        from safetensors.numpy import load_file

        components = load_file(str(projection))["components"]  # (Hs, Ht)
        theirs = theirs @ components.T
        theirs /= np.maximum(np.linalg.norm(theirs, axis=-1, keepdims=True), 1e-12)
    return float(np.mean(np.sum(ours * theirs, axis=-1)))


def write_card_section(model: str | Path, report: dict) -> Path:
    """Append an evaluation section (the command and the results) to the model's README.md."""
    from .card import command_line
    from .common import open_source

    folder = open_source(model).path
    card = folder / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    lines = [] if "\n## Evaluation\n" in text else ["", "## Evaluation"]
    lines += ["", "```", command_line(), "```", ""]
    if "mean_cosine_with_teacher" in report:
        data = ", ".join(f"`{p}`" for p in report.get("data", []))
        lines.append(f"- mean cosine with `{report['teacher']}` on {data}: {report['mean_cosine_with_teacher']:.4f}")
    if "perplexity" in report:
        ppl = report["perplexity"]
        data = ", ".join(f"`{p}`" for p in report.get("data", []))
        lines.append(f"- perplexity on {data}: {ppl['perplexity']:.3f} ({ppl['tokens']} tokens, {ppl['backend']})")
    for path, entry in report.get("retrieval", {}).items():
        m = entry["model"]
        tops = ", ".join(f"top-{k} {v:.4f}" for k, v in m["top_k"].items())
        size = f"{m['queries']} queries, {m['documents']} documents"
        line = f"- retrieval `{Path(path).name}` ({size}): MRR {m['mrr']:.4f}, {tops}"
        if "teacher" in entry:
            line += f"; teacher MRR {entry['teacher']['mrr']:.4f} (ratio {entry['mrr_ratio']:.4f})"
        lines.append(line)
    with card.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return card
