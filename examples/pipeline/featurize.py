"""Stage 2: turn the reviews into TF-IDF features, data/features/{train,test}.pkl.

The vocabulary is learnt from the training reviews only. Each file holds a sparse matrix `x`
and the labels `y`; pickles of these are the same bytes every time.
"""

import csv
import pickle
from pathlib import Path

import yaml
from sklearn.feature_extraction.text import TfidfVectorizer


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["featurize"]
    train_x, train_y = read(Path("data/prepared/train.csv"))
    test_x, test_y = read(Path("data/prepared/test.csv"))
    vectorizer = TfidfVectorizer(
        max_features=params["max_features"], ngram_range=(1, params["ngram_max"])
    )
    out = Path("data/features")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.pkl", "wb") as f:
        pickle.dump({"x": vectorizer.fit_transform(train_x), "y": train_y}, f)
    with open(out / "test.pkl", "wb") as f:
        pickle.dump({"x": vectorizer.transform(test_x), "y": test_y}, f)
    print(f"{len(vectorizer.vocabulary_)} features")


if __name__ == "__main__":
    main()
