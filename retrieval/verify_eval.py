"""How often verification errs, on a labelled set of claims: a correct claim removed (false
removal) and an unsupported claim kept (false keep)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.verify import Evidence, Verifier


@dataclass(slots=True)
class LabelledClaim:
    claim: str
    cites: list[str]  # "article_id#sentence_index"
    supported: bool
    kind: str


def load_claims(path: Path) -> list[LabelledClaim]:
    return [LabelledClaim(**json.loads(line)) for line in path.read_text("utf-8").splitlines()
            if line.strip()]


def sentence_index(paths: Iterable[Path]) -> dict[str, Evidence]:
    """Every sentence of the articles under ``paths``, as "article_id#index" -> Evidence."""
    from retrieval.ingest import iter_articles
    from retrieval.models import Article
    from retrieval.split import split_sentences

    out = {}
    for a in iter_articles(paths):
        if isinstance(a, Article):
            for s in split_sentences(a.id, a.text, a.body_start, 600):
                out[f"{a.id}#{s.index}"] = Evidence(s.text, a.published_iso, a.source)
    return out


def measure(verifier: Verifier, claims: list[LabelledClaim],
            sentences: dict[str, Evidence]) -> dict[str, Any]:
    rows = []
    for c in claims:
        evidence = [sentences[ref] for ref in c.cites]
        marked = c.claim.rstrip(".") + " " + "".join(f"[{i}]" for i in
                                                     range(1, len(evidence) + 1)) + "."
        check = verifier.check(marked, evidence)
        rows.append({"claim": c.claim, "kind": c.kind, "supported": c.supported,
                     "kept": check.kept, "reason": check.reason,
                     "similarity": check.similarity, "overlap": check.overlap})
    good = [r for r in rows if r["supported"]]
    bad = [r for r in rows if not r["supported"]]
    false_removal = [r for r in good if not r["kept"]]
    false_keep = [r for r in bad if r["kept"]]
    return {"claims": len(rows), "supported": len(good), "unsupported": len(bad),
            "false_removal_rate": len(false_removal) / max(1, len(good)),
            "false_keep_rate": len(false_keep) / max(1, len(bad)),
            "false_removals": false_removal, "false_keeps": false_keep, "rows": rows}
