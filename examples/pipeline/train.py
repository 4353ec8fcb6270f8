"""Stage 3: fit a logistic regression on the training features, models/model.pkl.

Also writes metrics/train.json (accuracy on the training set), which `tether repro` records
as the stage run's metrics.
"""

import json
import pickle
from pathlib import Path

import yaml
from sklearn.linear_model import LogisticRegression


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())["train"]
    with open("data/features/train.pkl", "rb") as f:
        train = pickle.load(f)
    model = LogisticRegression(C=params["C"], max_iter=1000, random_state=params["seed"])
    model.fit(train["x"], train["y"])
    Path("models").mkdir(exist_ok=True)
    with open("models/model.pkl", "wb") as f:
        pickle.dump(model, f)
    accuracy = model.score(train["x"], train["y"])
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/train.json").write_text(json.dumps({"train_accuracy": accuracy}, indent=2))
    print(f"train accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
