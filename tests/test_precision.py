"""NEWSBOT_PRECISION: each precision this machine supports gives vectors within the fidelity
bound of fp32; one it lacks is refused in one line; auto falls back to fp32. And the ingest
pipeline: sentences split in a worker process are the ones split in process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from retrieval import precision
from retrieval.embed import Embedder, default_model_path
from retrieval.ingest import iter_articles
from retrieval.precision import PrecisionError, resolve
from retrieval.split import split_sentences
from tests.conftest import ROOT, SAMPLES, write

MEDIAN_COSINE = 0.99  # the bound: median cosine to fp32 on the same sentences


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """A fixed set: every sentence of the bundled samples."""
    out = [s.text for a in iter_articles([SAMPLES]) if not hasattr(a, "reason")
           for s in split_sentences(a.id, a.text, a.body_start)]
    assert len(out) > 40
    return out


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return Embedder(precision="fp32").load()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_int8_vectors_are_within_the_fidelity_bound(fp32, sentences, model_cache):
    int8 = Embedder(precision="int8", cache_dir=model_cache).load()
    assert int8.precision == "int8" and int8.dim == fp32.dim == 384
    got, ref = int8.embed(sentences), fp32.embed(sentences)
    assert got.dtype == np.float32 and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    c = cosines(got, ref)
    assert np.median(c) >= MEDIAN_COSINE, np.median(c)
    assert c.min() >= 0.97, c.min()  # measured 0.986 on these sentences
    # Queries take the same path, and a sentence's vector doesn't depend on its batch.
    alone = np.stack([int8.embed_query(s) for s in sentences[:10]])
    assert np.array_equal(alone, got[:10])
    assert np.array_equal(int8.embed(sentences[3:7]), got[3:7])


def test_bf16_is_refused_for_the_embedder_in_one_line_on_every_cpu(tmp_path):
    """bf16 is not an embedding precision (it never beat int8, and its vectors depended on
    their batch): refused before anything is written, with or without native bf16."""
    with pytest.raises(PrecisionError, match="bf16 encoded slower than int8") as e:
        Embedder(precision="bf16", device="cpu").load()
    assert "\n" not in str(e.value)
    data = tmp_path / "d"
    r = subprocess.run([sys.executable, "-m", "newsbot", "--data-dir", str(data), "ingest",
                        str(SAMPLES)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "NEWSBOT_PRECISION": "bf16"}, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "NEWSBOT_PRECISION" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    if (data / "catalog.sqlite3").exists():  # refused before anything was written
        db = sqlite3.connect(data / "catalog.sqlite3")
        assert db.execute("SELECT COUNT(*) FROM articles").fetchone() == (0,)
        db.close()


def test_an_unusable_model_cache_is_one_line_not_a_traceback(tmp_path):
    """The int8 export needs a writable NEWSBOT_MODEL_CACHE; a path through a file (or an
    unwritable one) is refused in one line, exit 2, for the embedder and the reader alike."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(PrecisionError, match="cannot write the model cache") as e:
        Embedder(precision="int8", device="cpu", cache_dir=blocker / "models").load()
    assert "\n" not in str(e.value)
    r = subprocess.run([sys.executable, "-m", "newsbot", "--data-dir", str(tmp_path / "d"),
                        "ingest", str(SAMPLES)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "NEWSBOT_PRECISION": "int8",
                            "NEWSBOT_MODEL_CACHE": str(blocker / "models")}, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "cannot write the model cache" in r.stderr


@pytest.mark.parametrize("native_bf16", [False, True], ids=["avx2-only", "avx512_bf16-or-amx"])
def test_auto_picks_int8_on_every_cpu_and_falls_back_to_fp32(monkeypatch, native_bf16):
    """What auto picks does not depend on the CPU's bf16 support: int8 measured fastest on
    each kind (docs/precision.md)."""
    monkeypatch.setattr(precision, "cpu_bf16", lambda: native_bf16)
    monkeypatch.setattr(precision, "int8_available", lambda: False)
    assert resolve("auto", "cpu") == "fp32"
    with pytest.raises(PrecisionError, match="needs the onnx"):
        resolve("int8", "cpu")
    monkeypatch.setattr(precision, "int8_available", lambda: True)
    assert resolve("auto", "cpu") == "int8"
    assert resolve("auto", "cuda") == "fp32"  # half precision measured slower on a GPU
    with pytest.raises(PrecisionError, match="runs on the CPU"):
        resolve("int8", "cuda")
    with pytest.raises(PrecisionError, match="not a precision here"):
        resolve("fp8", "cpu")
    for device in ("cpu", "cuda"):
        with pytest.raises(PrecisionError, match="bf16 encoded slower than int8"):
            resolve("bf16", device)
    # The reader still offers bf16, where the CPU computes it natively.
    reader = precision.READER_PRECISIONS
    if native_bf16:
        assert resolve("bf16", "cpu", allowed=reader) == "bf16"
    else:
        with pytest.raises(PrecisionError, match="no native bf16"):
            resolve("bf16", "cpu", allowed=reader)
    assert resolve("auto", "cpu", allowed=reader) == "int8"


def test_int8_export_is_cached_in_the_data_dir_and_a_damaged_one_is_redone(
        make_bot, tmp_path, monkeypatch, fp32):
    from newsbot.settings import Settings
    from retrieval.service import Newsbot

    monkeypatch.delenv("NEWSBOT_MODEL_CACHE")
    data = tmp_path / "data"
    nb = Newsbot(Settings(data_dir=data, precision="int8"))
    try:
        v = nb.embedder.embed(["Wallace met Lambrecht in Berlin."])
    finally:
        nb.close()
    [cached] = list((data / "models").glob("embedding-int8-*.onnx"))
    assert not list((data / "models").glob(".tmp-*"))  # nothing half-written left behind
    stamp = cached.stat().st_mtime_ns
    again = Embedder(precision="int8", cache_dir=data / "models").load()
    assert cached.stat().st_mtime_ns == stamp  # loaded, not exported again
    assert np.array_equal(again.embed(["Wallace met Lambrecht in Berlin."]), v)
    cached.write_bytes(cached.read_bytes()[:1000])  # as if a disk filled up mid-write
    redone = Embedder(precision="int8", cache_dir=data / "models").load()
    assert np.array_equal(redone.embed(["Wallace met Lambrecht in Berlin."]), v)
    assert cosines(v, fp32.embed(["Wallace met Lambrecht in Berlin."]))[0] >= 0.97  # one sentence


def test_int8_refuses_a_model_it_cannot_reproduce(tmp_path):
    model = tmp_path / "cls-model"
    shutil.copytree(default_model_path(), model, symlinks=True,
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    for w in ("model.safetensors",):
        os.symlink(os.path.join(default_model_path(), w), model / w)
    pooling = model / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    with pytest.raises(PrecisionError, match="mean-pooled, normalised models only") as e:
        Embedder(str(model), precision="int8", cache_dir=tmp_path / "cache").load()
    assert "\n" not in str(e.value)
    # auto doesn't refuse it: it keeps fp32 for a model int8 can't reproduce.
    assert Embedder(str(model), precision="auto", device="cpu").precision == "fp32"
    assert Embedder(precision="auto", device="cpu").precision == "int8"


def _articles(n: int, sentences: int = 6) -> list[dict]:
    return [{"id": f"town-{i}", "title": f"Town {i} news", "source": "Test Wire",
             "published": "2024-03-01",
             "text": " ".join(f"The council of town {i} voted {j} times on the new "
                              f"{['bridge', 'school', 'clinic'][j % 3]} plan, Mr. Smith said."
                              for j in range(sentences + i % 4))}
            for i in range(n)]


def test_pipelined_ingest_stores_what_a_single_batch_stores(make_bot, tmp_path, monkeypatch):
    from retrieval import pipeline

    source = write(tmp_path / "towns.jsonl", "\n".join(json.dumps(a) for a in _articles(23)))
    submitted: list[int] = []
    real_submit = pipeline.SplitAhead.submit

    def counting_submit(self, articles):
        submitted.append(len(articles))
        return real_submit(self, articles)

    monkeypatch.setattr(pipeline.SplitAhead, "submit", counting_submit)
    single = make_bot(data_dir=tmp_path / "single", ingest_batch=1000)
    expected = single.ingest([source, SAMPLES])
    assert not expected.failed
    assert submitted == []  # one batch: split in process, no worker started
    # One worker (a CPU encoder), and two with batches further ahead (as on a GPU).
    for workers in (1, 2):
        piped = make_bot(data_dir=tmp_path / f"piped-{workers}", ingest_batch=4)
        piped.__dict__["split_workers"] = workers
        report = piped.ingest([source, SAMPLES])
        # Every batch after the first went to a worker, the last (partial) one included.
        assert len(submitted) == -(-report.added // 4) - 1 and sum(submitted) > 20
        submitted.clear()
        assert report.to_dict() | {"seconds": 0} == expected.to_dict() | {"seconds": 0}
        for a in single.catalog.articles():
            assert piped.catalog.load("global", a.id) == single.catalog.load("global", a.id)
            assert piped.catalog.chunks_of("global", a.id) == single.catalog.chunks_of(
                "global", a.id)
        assert piped.vector_counts() == single.vector_counts()
        # A rerun splits nothing: unchanged articles are not sent to a worker.
        assert piped.ingest([source, SAMPLES]).unchanged == report.added
        assert submitted == []


def test_a_dead_split_worker_means_splitting_in_process(tmp_path):
    from retrieval.models import Article
    from retrieval.pipeline import SplitAhead

    arts = [Article(id=a["id"], title=a["title"], text=a["text"], source=a["source"])
            for a in _articles(3)]
    ahead = SplitAhead(600, 5, 2)
    try:
        got = ahead.get(ahead.submit([((a.id, a.content_hash()), a) for a in arts]))
        assert [len(got[(a.id, a.content_hash())][0]) for a in arts] == [6, 7, 8]
        for pid in list(ahead._pool._processes):
            os.kill(pid, signal.SIGKILL)
        # The pool notices its worker died: nothing comes back, and the caller splits.
        assert ahead.get(ahead.submit([((a.id, a.content_hash()), a) for a in arts])) == {}
        assert ahead.submit([((a.id, a.content_hash()), a) for a in arts]) is None
    finally:
        ahead.close()


SCRIPT = """
import json, sys
from newsbot.settings import Settings
from retrieval import pipeline
from retrieval.service import Newsbot
started = []
real_init = pipeline.SplitAhead.__init__
def counting_init(self, *args):  # how many worker pools this run started
    started.append(1)
    real_init(self, *args)
pipeline.SplitAhead.__init__ = counting_init
{body}
"""
BODY = """print("RUN", flush=True)
nb = Newsbot(Settings(data_dir=sys.argv[1], ingest_batch=4))
report = nb.ingest([sys.argv[2]])
print(json.dumps([report.added, len(report.failed), len(started)]), flush=True)
nb.close()"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_script_without_a_main_guard_is_not_run_again_by_workers(tmp_path, guarded):
    """Spawned workers import the main script again: an unguarded user script would run a
    second time inside each. Such a script splits in process instead; a guarded one gets
    its workers."""
    source = write(tmp_path / "towns.jsonl", "\n".join(json.dumps(a) for a in _articles(23)))
    body = ("def main():\n" + "\n".join("    " + line for line in BODY.splitlines())
            + '\n\nif __name__ == "__main__":\n    main()') if guarded else BODY
    script = write(tmp_path / "user_script.py", SCRIPT.format(body=body))
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "data"), str(source)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines.count("RUN") == 1, r.stdout
    assert json.loads(lines[-1]) == [23, 0, 1 if guarded else 0]
