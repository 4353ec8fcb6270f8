"""Stage 4: score the model on the held-out reviews, metrics/evaluate.json."""

import json
import pickle
from pathlib import Path

from sklearn.metrics import accuracy_score, f1_score


def main() -> None:
    with open("models/model.pkl", "rb") as f:
        model = pickle.load(f)
    with open("data/features/test.pkl", "rb") as f:
        test = pickle.load(f)
    predicted = model.predict(test["x"])
    metrics = {
        "accuracy": accuracy_score(test["y"], predicted),
        "f1": f1_score(test["y"], predicted, pos_label="fresh"),
    }
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/evaluate.json").write_text(json.dumps(metrics, indent=2))
    print(f"accuracy {metrics['accuracy']:.4f}  f1 {metrics['f1']:.4f}")


if __name__ == "__main__":
    main()
