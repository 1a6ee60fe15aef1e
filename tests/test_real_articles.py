"""Loaders and splitting on real news (../shared/data, present on developer and CI machines;
skipped elsewhere). Nothing from it is stored in the repository."""

from __future__ import annotations

import gzip
import itertools
import json

from retrieval.ingest import from_record
from retrieval.split import make_chunks, split_sentences


def first_records(path, n):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in itertools.islice(f, n)]


def test_real_articles_split_with_exact_offsets(shared_data):
    records = (first_records(shared_data / "realtimeqa-dev" / "articles.jsonl.gz", 150)
               + first_records(shared_data / "bbc" / "articles.jsonl.gz", 150))
    datelines = 0
    for r in records:
        a = from_record(r, "test")
        datelines += a.body_start > 0
        sentences = split_sentences(a.id, a.text, a.body_start)
        assert sentences, a.id
        for s in sentences:
            assert a.text[s.start:s.end] == s.text and s.text.strip() == s.text
            assert len(s.text) <= 600
        assert all(x.end <= y.start for x, y in itertools.pairwise(sentences))
        for c in make_chunks(a.id, a.text, sentences, 5, 2):
            assert c.text == a.text[c.start:c.end]
    assert datelines >= 10  # "GARDINER, Mont. -" style datelines are common in the US set
