"""pipeline.lock round trips whatever a stage holds, however its YAML has to be quoted."""

from __future__ import annotations

from pathlib import Path

from tether.pipelines.lock import StageLock, read_lock, write_lock


def test_lock_round_trips_awkward_entries(tmp_path: Path) -> None:
    write_lock(tmp_path, {})
    assert read_lock(tmp_path) == {}
    stages = {
        "train": StageLock(
            'python train.py --note "' + "x " * 60 + '"\n\nsecond: line',  # folded, multi-line
            {"data/in.csv": "blake3:" + "a" * 64},
            {"params.yaml": {"train.layers": [1, 2], "train.tag": "a: b", "train.off": None}},
            {"model.bin": "blake3:" + "b" * 64},
            "run-1",
            {"OMP_NUM_THREADS": "1"},
        ),
        "prepare": StageLock("echo {x}"),
    }
    write_lock(tmp_path, stages)
    assert read_lock(tmp_path) == stages
    text = (tmp_path / "pipeline.lock").read_text()
    assert text.index("prepare:") < text.index("train:")  # sorted, so diffs stay small
    assert not any(line != line.rstrip() for line in text.splitlines())  # no trailing blanks
    stages["prepare"] = StageLock("echo {y}")  # one entry changes, the other is reused
    write_lock(tmp_path, stages)
    assert read_lock(tmp_path) == stages
