"""Predictions written down before a run and set against what it measured.

Many exercises say "before you run it, predict". A prediction that is only thought is easily remembered as right,
so the notebooks keep it: ``record(name, answer, config)`` writes the answer (one of the prediction's choices) to
``results/<profile>/predictions.json`` before the cell computes anything, and ``reveal(name, config, *measured)``
works out which choice the run bore out and prints it beside the prediction. Until the outcome is shown a
prediction may be changed (each change is kept); after that it stays as it was, so the file is a fair record of
what was expected. ``python -m hybridlib predictions`` prints the file as a table (for a class: collect them).

- :data:`PREDICTIONS`: each prediction's question, its choices, and the function that reads the outcome from what
  the notebook measured (None: not measured yet, with what to do about it).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from . import solutions
from .config import Config
from .files import write_json
from .paths import results_dir


class Prediction(NamedTuple):
    """A question answered by one of ``choices`` before a run; ``outcome(*measured)`` is the choice the run bore
    out, or None when it has not been measured yet (then ``missing`` says how to measure it)."""
    question: str
    choices: tuple[str, ...]
    outcome: Callable[..., str | None]
    missing: str = ""


def _one_by_one_shrinks(config: Config) -> str:
    """What 1x1 patches shrink: the measured sizes of :func:`solutions.one_by_one_patches` against this profile's."""
    one = solutions.one_by_one_patches(config)
    smaller = [name for name, now, then in (("sequence length", config.data.seq_len, one["sequence length"]),
                                            ("vocabulary", config.data.vocab_size, one["vocabulary"]),
                                            ("attention cost", 1.0, one["attention cost ratio"])) if then < now]
    # smaller patches never shorten the sequence (nor, then, its attention cost): at most one of the three shrinks
    return smaller[0] if smaller else "none"


def _up_or_down(without_mask: float, with_mask: float) -> str:
    return "up" if without_mask > with_mask else "down"


def _costs_most(knn: dict[str, float]) -> str | None:
    """Which augmentation, switched off, leaves the lowest kNN accuracy (None until all three were run)."""
    costs = {name: knn.get(name) for name in ("crop", "flip", "jitter")}
    if any(value is None for value in costs.values()):
        return None
    return min(costs, key=costs.get)


def _one_or_more(config: Config) -> str:
    return "one" if solutions.mask_off_by_one(config) == 1 else "more than one"


def _smaller_or_larger(paired_error: float, own_error: float) -> str:
    return "smaller" if paired_error < own_error else "larger"


def _better_or_worse(auroc: float, reference: float) -> str:
    return "better" if auroc > reference else "worse"


def _share_against_equal(shares: dict[float, float]) -> str | None:
    """Whether every hybrid's contrastive share of the gradient is above λ / (1 + λ), every one below, or neither."""
    if not shares:
        return None
    above = [share > lam / (1 + lam) for lam, share in shares.items()]
    return "above" if all(above) else "below" if not any(above) else "mixed"


def _row(rows: list[dict], lam: float) -> dict | None:
    return next((r for r in rows if math.isclose(r["lam"], lam)), None)


def _lambda_ten_probe(rows: list[dict]) -> str | None:
    """Whether λ = 10's probe accuracy is nearer contrastive-only's (the sweep's λ = ∞ row) or λ = 3's."""
    ten, three, contrastive = _row(rows, 10.0), _row(rows, 3.0), _row(rows, math.inf)
    if ten is None or three is None or contrastive is None:
        return None
    to_contrastive = abs(ten["linear_probe_acc"] - contrastive["linear_probe_acc"])
    return "contrastive-only" if to_contrastive < abs(ten["linear_probe_acc"] - three["linear_probe_acc"]) else "λ = 3"


def _lambda_ten_bits(rows: list[dict]) -> str | None:
    """Whether λ = 10's bits/dim is worse (higher) than λ = 3's."""
    ten, three = _row(rows, 10.0), _row(rows, 3.0)
    if ten is None or three is None:
        return None
    return "worse" if ten["test_bits_per_dim"] > three["test_bits_per_dim"] else "not worse"


_SWEEP_MISSING = "add 10.0 to LAMS in the parameters cell (3.0 stays in it) and rerun the notebook"

PREDICTIONS: dict[str, Prediction] = {
    "one-by-one-shrinks": Prediction(
        "with 1x1 patches, which of sequence length, vocabulary and attention cost shrinks?",
        ("sequence length", "vocabulary", "attention cost", "none"), _one_by_one_shrinks),
    "no-self-mask-init": Prediction(
        "without the self-mask, does the untrained model's loss go up or down?", ("up", "down"), _up_or_down),
    "augmentation-off": Prediction(
        "which augmentation, switched off, costs the contrastive model's kNN accuracy the most?",
        ("crop", "flip", "jitter"), _costs_most,
        "the short runs need validation images (the profile's n_val); the cpu profile has them"),
    "leak-per-mask": Prediction(
        "a mask one position off: is the first prediction that moves one position earlier, or more?",
        ("one", "more than one"), _one_or_more),
    "paired-error": Prediction(
        "is the paired standard error of two probes smaller or larger than one probe's own?",
        ("smaller", "larger"), _smaller_or_larger),
    "class-mean-near-ood": Prediction(
        "on upside-down test images, is the class-mean distance a better or a worse OOD score than the kNN "
        "distance?", ("better", "worse"), _better_or_worse),
    "share-vs-equal": Prediction(
        "is the trained hybrids' contrastive share of the encoder's gradient above or below λ / (1 + λ)?",
        ("above", "below", "mixed"), _share_against_equal),
    "lambda-ten-probe": Prediction(
        "is λ = 10's probe accuracy nearer contrastive-only's or λ = 3's?", ("contrastive-only", "λ = 3"),
        _lambda_ten_probe, _SWEEP_MISSING),
    "lambda-ten-bits": Prediction(
        "is λ = 10's bits/dim worse than λ = 3's?", ("worse", "not worse"), _lambda_ten_bits, _SWEEP_MISSING),
}


def predictions_path(config: Config) -> Path:
    return results_dir() / config.profile / "predictions.json"


def _prediction(name: str) -> Prediction:
    if name not in PREDICTIONS:
        raise KeyError(f"no prediction {name!r}; the predictions are: {', '.join(PREDICTIONS)}")
    return PREDICTIONS[name]


def _normal(text: str) -> str:
    """``text`` without case, spaces and hyphens, λ spelt out: "Lambda=3" names "λ = 3"."""
    return "".join(text.lower().replace("λ", "lambda").replace("-", " ").split())


def _choice(name: str, answer: Any) -> str | None:
    """The choice ``answer`` names (case, spaces and hyphens aside), or None."""
    if not isinstance(answer, str):
        return None
    return next((c for c in _prediction(name).choices if _normal(c) == _normal(answer)), None)


def load(config: Config) -> dict[str, dict]:
    """The recorded predictions of ``config``'s profile (empty when there are none)."""
    path = predictions_path(config)
    try:
        records = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):  # nothing recorded yet (or no results folder to record in)
        return {}
    except (OSError, ValueError) as e:  # a damaged file is left as it is, for its owner to look at
        raise OSError(f"cannot read {path} ({e}); move it aside and the predictions start afresh") from None
    if not isinstance(records, dict) or not all(map(_well_formed, records.values())):
        raise OSError(f"{path} is not a file of predictions; move it aside and the predictions start afresh")
    return records


def _well_formed(entry: Any) -> bool:
    """An entry as :func:`record` and :func:`reveal` write it: a prediction with its time, or None; an outcome with
    its time, where one was shown (always, when there is no prediction)."""
    if not isinstance(entry, dict) or "prediction" not in entry:
        return False
    has_outcome = "outcome" in entry and "revealed" in entry
    return (entry["prediction"] is None and has_outcome) or (
        entry["prediction"] is not None and "recorded" in entry and (has_outcome or "outcome" not in entry))


def _save(config: Config, records: dict[str, dict]) -> str | None:
    """Write ``records``; None, or why that failed (then nothing new is kept)."""
    try:
        write_json(predictions_path(config), records)
    except OSError as e:
        return str(e)
    return None


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def record(name: str, answer: Any, config: Config) -> None:
    """Keep ``answer`` as the prediction ``name``, before its outcome is computed; print one line saying so.

    None: not predicted yet (nothing is written). Not one of the choices: says which are, writes nothing. After the
    outcome has been shown, a different answer is refused and the first one stays; so is a first answer given only
    after the outcome was shown."""
    prediction = _prediction(name)
    options = " or ".join(f'"{c}"' for c in prediction.choices)
    if answer is None:
        print(f"{name}: no prediction yet ({prediction.question} Replace the None with {options}.)")
        return
    choice = _choice(name, answer)
    if choice is None:
        print(f"{name}: {answer!r} is not one of {options}; nothing recorded")
        return
    records = load(config)
    entry = records.get(name)
    if entry is not None and entry.get("prediction") is None:
        print(f"{name}: the outcome (\"{entry['outcome']}\") was shown at {entry['revealed']}, before any prediction; "
              f"\"{choice}\" is not recorded (a prediction is made before its outcome is seen)")
        return
    if entry is not None and entry["prediction"] == choice:
        print(f"{name}: your prediction \"{choice}\" is recorded ({entry['recorded']})")
        return
    if entry is not None and "outcome" in entry:
        print(f"{name}: your prediction stays \"{entry['prediction']}\", recorded at {entry['recorded']} before the "
              f"outcome was shown (\"{entry['outcome']}\"); \"{choice}\" is not recorded")
        return
    changes = ([*entry.get("changes", []), {"prediction": entry["prediction"], "recorded": entry["recorded"]}]
               if entry is not None else [])
    records[name] = {"question": prediction.question, "prediction": choice, "recorded": _now(),
                     **({"changes": changes} if changes else {})}
    failed = _save(config, records)
    print(f"{name}: your prediction \"{choice}\" is not kept: {failed}" if failed else
          f"{name}: recorded your prediction \"{choice}\" in {predictions_path(config)}")


def reveal(name: str, config: Config, *measured: Any) -> str | None:
    """Work out the outcome from ``measured`` and print it beside the recorded prediction; the outcome (None when
    not measured yet). The first outcome shown is kept, with the prediction or, when none was recorded, in its
    place, so that a prediction cannot follow it."""
    prediction = _prediction(name)
    outcome = prediction.outcome(*measured)
    if outcome is None:
        print(f"{name}: not measured yet{': ' + prediction.missing if prediction.missing else ''}")
        return None
    records = load(config)
    entry = records.get(name)
    if entry is not None and "outcome" in entry and entry["outcome"] != outcome:  # another run measured otherwise
        print(f"{name}: this run measured \"{outcome}\"; the outcome kept is the first one shown, "
              f"\"{entry['outcome']}\" ({entry['revealed']})")
        outcome = entry["outcome"]
    if entry is None or entry["prediction"] is None:
        print(f"{name}: measured \"{outcome}\" (no prediction was recorded before it)")
        if entry is None:
            records[name] = {"question": prediction.question, "prediction": None, "outcome": outcome,
                             "revealed": _now()}
            _save_outcome(name, config, records)
        return outcome
    right = entry["prediction"] == outcome
    print(f"{name}: you predicted \"{entry['prediction']}\" ({entry['recorded']}); measured \"{outcome}\": "
          f"{'as you predicted' if right else 'not as you predicted'}")
    if "outcome" not in entry:
        entry.update(outcome=outcome, revealed=_now(), right=right)
        _save_outcome(name, config, records)
    return outcome


def _save_outcome(name: str, config: Config, records: dict[str, dict]) -> None:
    failed = _save(config, records)
    if failed:
        print(f"{name}: the outcome is not kept: {failed}")


def table(config: Config) -> str:
    """The recorded predictions of ``config``'s profile as a markdown table, in the notebooks' order."""
    records = load(config)
    if not records:
        return f"no predictions recorded for the {config.profile} profile ({predictions_path(config)})"
    lines = ["| prediction | question | predicted | changed | measured | right |", "|---|---|---|---:|---|---|"]
    for name in [*PREDICTIONS, *sorted(set(records) - set(PREDICTIONS))]:
        if name in records:
            e = records[name]
            right = "–" if "right" not in e else "yes" if e["right"] else "no"
            predicted = "(none before the outcome)" if e.get("prediction") is None else e["prediction"]
            lines.append(f"| {name} | {e.get('question', '')} | {predicted} | {len(e.get('changes', []))} "
                         f"| {e.get('outcome', '–')} | {right} |")
    return "\n".join(lines)
