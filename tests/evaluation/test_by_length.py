"""The by-length evaluation, and the length calibration end to end on generated reviews."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from reviewsense.data.dataset import Dataset
from reviewsense.data.spans import BUCKETS
from reviewsense.evaluation.by_length import by_length, format_table, plot_by_length, worst_ece
from reviewsense.pipeline import DataSpec, TrainConfig, train

POSITIVE = ["great", "wonderful", "loved", "superb", "moving"]
NEGATIVE = ["awful", "boring", "hated", "dull", "clumsy"]
FILLER = ["the", "film", "plot", "was", "acting", "and", "a", "story", "it", "of", "cast", "scene"]


def reviews(n: int, seed: int) -> Dataset:
    """Reviews of several sentences. Each sentence has filler words and, half of the time, a
    word of its review's side (sometimes of the other side). Negative reviews run longer and
    repeat "film" more, so a model of counts learns a bias that only long texts can carry —
    the defect of the IMDB-trained default model that the length calibration fixes."""
    rng = np.random.default_rng(seed)
    texts, labels = [], rng.integers(0, 2, n)
    for y in labels.tolist():
        sentences = []
        for _ in range(int(rng.integers(6, 10) if y else rng.integers(9, 14))):
            words = list(rng.choice(FILLER, int(rng.integers(5, 10))))
            if not y:
                words += ["film"] * int(rng.integers(0, 3))
            if rng.random() < 0.5:
                side = POSITIVE if (y == 1) != (rng.random() < 0.15) else NEGATIVE
                words.append(str(rng.choice(side)))
            rng.shuffle(words)
            sentences.append(" ".join(words).capitalize() + ".")
        texts.append(" ".join(sentences))
    return Dataset(texts, labels, name="generated")


def test_constant_scorer_reads_the_label_rate():
    data = reviews(300, 0)
    result = by_length(lambda texts: np.full(len(texts), 0.5), data)
    assert list(result["buckets"]) == list(BUCKETS)
    for row in result["buckets"].values():
        assert row["predicted_positive"] == 1.0
        assert row["accuracy"] == pytest.approx(row["labelled_positive"], abs=1e-4)
        assert row["ece"] == pytest.approx(abs(0.5 - row["labelled_positive"]), abs=1e-4)
        assert row["roc_auc"] == 0.5


def test_a_scorer_that_knows_the_review_is_right_everywhere():
    data = reviews(200, 1)
    label_of_word = {}
    for text, y in zip(data.texts, data.labels.tolist(), strict=True):
        for word in text.split():
            label_of_word.setdefault(word, set()).add(y)
    full = {t: y for t, y in zip(data.texts, data.labels.tolist(), strict=True)}
    result = by_length(lambda texts: np.array([float(full[t]) if t in full else 0.5 for t in texts]), data)
    assert result["buckets"]["full review"]["accuracy"] == 1.0
    assert result["buckets"]["full review"]["ece"] == 0.0


def test_table_plot_and_errors(tmp_path):
    data = reviews(100, 2)
    result = by_length(lambda texts: np.linspace(0, 1, len(texts)), data)
    table = format_table(result)
    assert all(f"| {bucket} |" in table for bucket in BUCKETS)
    assert worst_ece(result) == max(r["ece"] for r in result["buckets"].values())
    png = plot_by_length({"a": result, "b": result}, tmp_path / "by_length.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="probabilities"):
        by_length(lambda texts: np.zeros(3), data)


def _write(path: Path, data: Dataset) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(data.texts, data.labels.tolist(), strict=True))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("lengths")
    train_csv, test_csv = _write(root / "train.csv", reviews(1500, 3)), _write(root / "test.csv", reviews(1500, 4))
    out = {}
    # "plain": the model as it was before the length work (no spans in the fit, no length calibration)
    for name, calibrated in (("calibrated", True), ("plain", False)):
        linear = {"hash_bits": 14} if calibrated else {"hash_bits": 14, "span_weight": 0.0}
        config = TrainConfig(run_dir=str(root / name), settings={"nblinear": linear}, length_calibration=calibrated,
                             data=DataSpec(path=str(train_csv), test_path=str(test_csv), random_split=True))
        out[name] = {"metrics": train(config), "run": root / name}
    return out


def test_the_generated_reviews_show_the_defect_without_calibration(runs):
    """The test has teeth: the model's own scores are biased on short texts here."""
    import reviewsense

    plain = runs["plain"]["metrics"]["by_length"]
    assert worst_ece(plain) > 0.15
    model = reviewsense.load(runs["plain"]["run"] / "model")
    assert abs(float(model.positive_proba([""])[0]) - 0.5) > 0.1


def test_calibrated_model_is_honest_at_every_length(runs):
    import reviewsense

    metrics = runs["calibrated"]["metrics"]
    assert worst_ece(metrics["by_length"]) <= 0.07  # 1,500 texts a bucket: ±0.03 of sampling noise
    assert metrics["test"]["accuracy"] >= runs["plain"]["metrics"]["test"]["accuracy"] - 0.02
    for row in metrics["by_length"]["buckets"].values():  # no bucket is called mostly one side
        assert abs(row["predicted_positive"] - row["labelled_positive"]) < 0.25
    model = reviewsense.load(runs["calibrated"]["run"] / "model")
    empty, great, awful = model.positive_proba(["", "great", "awful"])
    assert 0.4 < empty < 0.6 and great > 0.5 > awful
    explanation = model.explain("great film")
    assert explanation.logit == pytest.approx(sum(explanation.features.values()) + explanation.bias, abs=1e-4)
    assert explanation.logit == pytest.approx(float(model.predict_logits(["great film"])[0]), abs=1e-4)


def test_run_folder_has_the_by_length_table_and_plot(runs):
    run = runs["calibrated"]["run"]
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved["by_length"]["buckets"]) == set(BUCKETS)
    assert (run / "by_length.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    assert manifest["length_calibration"]["kind"] == "length"
    assert json.loads((runs["plain"]["run"] / "model" / "manifest.json").read_text())["length_calibration"] is None


def test_large_sets_are_sampled_to_max_texts():
    data = reviews(200, 5)
    result = by_length(lambda texts: np.full(len(texts), 0.5), data, max_texts=50)
    assert result["buckets"]["full review"]["count"] == 50
    assert result["reviews"] == 50 and result["of"] == 200
    again = by_length(lambda texts: np.full(len(texts), 0.5), data, max_texts=50)
    assert again == result
    assert by_length(lambda texts: np.full(len(texts), 0.5), data)["reviews"] == 200
