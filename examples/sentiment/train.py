"""Train a sentiment classifier on the movie reviews and record the run with Tether.

Run it as `tether run -- python train.py --C 1.0` (the run also keeps the command and its
output), or as plain `python train.py --C 1.0`: the first `tether.*` call then starts a run.
"""

import argparse
import csv
import pickle
import time
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

import tether


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    parser.add_argument("--max-features", type=int, default=20000, help="vocabulary size")
    parser.add_argument("--ngram-max", type=int, default=1, help="longest n-gram")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--data", type=Path, default=Path("data"), help="train.csv and test.csv")
    args = parser.parse_args()

    tether.seed(args.seed)
    # Every hyperparameter, defaults included, under argparse's names (`tether run` records
    # `--max-features 5000` as `max_features` too, so the two agree).
    tether.log_params({k: v for k, v in vars(args).items() if k != "data"})
    train_x, train_y = read(args.data / "train.csv")
    test_x, test_y = read(args.data / "test.csv")
    tether.log_input(args.data / "train.csv")
    tether.log_input(args.data / "test.csv")

    model = make_pipeline(
        TfidfVectorizer(max_features=args.max_features, ngram_range=(1, args.ngram_max)),
        LogisticRegression(C=args.C, max_iter=1000, random_state=args.seed),
    )
    started = time.perf_counter()
    model.fit(train_x, train_y)
    tether.log_metric("train_seconds", time.perf_counter() - started)

    predicted = model.predict(test_x)
    accuracy = accuracy_score(test_y, predicted)
    f1 = f1_score(test_y, predicted, pos_label="fresh")
    tether.log_metrics({"accuracy": accuracy, "f1": f1})
    print(f"accuracy {accuracy:.4f}  f1 {f1:.4f}")

    Path("models").mkdir(exist_ok=True)
    with open("models/model.pkl", "wb") as f:
        pickle.dump(model, f)
    tether.log_output("models/model.pkl")


if __name__ == "__main__":
    main()
