"""Predictions: written down before a run, kept once the outcome is shown, and judged from what was measured."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest

from hybridlib import predictions
from hybridlib.config import get_config
from hybridlib.predictions import PREDICTIONS, load, predictions_path, record, reveal, table

from conftest import REPO, cli

NOTEBOOKS = sorted((REPO / "notebooks").glob("0*.py"))


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(tmp_path))
    return get_config("smoke", "hybrid")


def sweep(**lams_to_probe_and_bits):
    """Made-up sweep rows: λ -> (probe accuracy, bits/dim); contrastive-only (λ = ∞) has no bits/dim."""
    return [{"lam": float(lam), "linear_probe_acc": p, "test_bits_per_dim": b}
            for lam, (p, b) in lams_to_probe_and_bits.items()]


def test_no_prediction_writes_nothing(config, capsys):
    record("share-vs-equal", None, config)
    assert "no prediction yet" in capsys.readouterr().out and not predictions_path(config).exists()


def test_an_answer_that_is_not_a_choice_is_told_and_not_recorded(config, capsys):
    record("share-vs-equal", "abov", config)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and '"above" or "below" or "mixed"' in out and "nothing recorded" in out
    assert not predictions_path(config).exists()
    record("share-vs-equal", 1, config)
    assert "nothing recorded" in capsys.readouterr().out


def test_a_prediction_is_kept_and_may_change_until_the_outcome_is_shown(config, capsys):
    record("share-vs-equal", " Above ", config)  # case and spacing aside
    record("share-vs-equal", "below", config)
    entry = load(config)["share-vs-equal"]
    assert entry["prediction"] == "below" and [c["prediction"] for c in entry["changes"]] == ["above"]
    assert reveal("share-vs-equal", config, {0.1: 0.5, 1.0: 0.9}) == "above"
    assert "not as you predicted" in capsys.readouterr().out.splitlines()[-1]
    record("share-vs-equal", "above", config)  # after the outcome: refused, the first prediction stays
    assert "stays \"below\"" in capsys.readouterr().out
    entry = load(config)["share-vs-equal"]
    assert entry["prediction"] == "below" and entry["outcome"] == "above" and entry["right"] is False


def test_the_first_outcome_shown_is_the_one_kept(config, capsys):
    record("paired-error", "smaller", config)
    reveal("paired-error", config, 0.002, 0.004)
    first = load(config)["paired-error"]
    reveal("paired-error", config, 0.005, 0.004)  # another run measures otherwise: printed, not recorded
    out = capsys.readouterr().out.splitlines()
    assert 'measured "larger"; the outcome kept is the first one shown, "smaller"' in out[-2]
    assert out[-1].endswith('measured "smaller": as you predicted')  # judged against the kept outcome
    assert load(config)["paired-error"] == first and first["right"] is True


def test_an_outcome_shown_before_any_prediction_is_kept_and_no_prediction_may_follow_it(config, capsys):
    assert reveal("no-self-mask-init", config, 5.2, 4.1) == "up"
    assert "no prediction was recorded" in capsys.readouterr().out
    record("no-self-mask-init", "up", config)  # the outcome is known now: refused
    assert "before any prediction" in capsys.readouterr().out
    entry = load(config)["no-self-mask-init"]
    assert entry["prediction"] is None and entry["outcome"] == "up" and "right" not in entry
    assert "| no-self-mask-init | " in table(config) and "(none before the outcome)" in table(config)
    assert reveal("no-self-mask-init", config, 3.0, 4.1) == "up"  # another run, measured otherwise: the first stays
    assert 'measured "down"; the outcome kept is the first one shown, "up"' in capsys.readouterr().out


def test_choices_are_read_without_case_spaces_and_hyphens(config):
    assert predictions._choice("lambda-ten-probe", "Lambda=3") == "λ = 3"
    assert predictions._choice("lambda-ten-probe", "contrastive only") == "contrastive-only"
    assert predictions._choice("leak-per-mask", "more than 1") is None


def test_the_lambda_ten_outcomes_need_lambda_ten_in_the_sweep(config, capsys):
    rows = sweep(**{"0": (0.80, 0.85), "3": (0.84, 0.88), "inf": (0.83, None)})
    assert reveal("lambda-ten-probe", config, rows) is None and reveal("lambda-ten-bits", config, rows) is None
    assert capsys.readouterr().out.count("add 10.0 to LAMS") == 2
    rows.insert(2, {"lam": 10.0, "linear_probe_acc": 0.832, "test_bits_per_dim": 0.90})
    assert predictions._lambda_ten_probe(rows) == "contrastive-only"
    assert predictions._lambda_ten_bits(rows) == "worse"
    rows[2].update(linear_probe_acc=0.840, test_bits_per_dim=0.87)
    assert predictions._lambda_ten_probe(rows) == "λ = 3" and predictions._lambda_ten_bits(rows) == "not worse"


def test_the_share_is_above_below_or_mixed_against_equal_gradients():
    share = predictions._share_against_equal
    assert share({0.1: 0.2, 1.0: 0.6}) == "above"  # equal gradients: 0.091 and 0.5
    assert share({0.1: 0.05, 1.0: 0.4}) == "below"
    assert share({0.1: 0.2, 1.0: 0.4}) == "mixed"
    assert share({}) is None


def test_one_by_one_patches_shrink_the_vocabulary_of_grey_patches_and_nothing_of_palette_tokens():
    assert predictions._one_by_one_shrinks(get_config("cpu", "hybrid")) == "vocabulary"
    assert predictions._one_by_one_shrinks(get_config("gpu-small", "hybrid")) == "none"


def test_the_augmentation_that_costs_most_is_the_one_with_the_lowest_accuracy_once_all_three_ran():
    assert predictions._costs_most({"every augmentation": 0.8, "crop": 0.7, "flip": 0.79, "jitter": 0.6}) == "jitter"
    assert predictions._costs_most({"every augmentation": 0.8, "crop": 0.7, "flip": 0.79}) is None


def test_a_mask_off_by_one_leaks_one_position_only_in_a_one_block_model():
    one_block = get_config("smoke", "contrastive").with_model(n_encoder_layers=1, n_decoder_layers=0)
    assert predictions._one_or_more(one_block) == "one"
    assert predictions._one_or_more(get_config("cpu", "hybrid")) == "more than one"


def test_every_outcome_is_one_of_its_choices(config):
    measured = {"one-by-one-shrinks": (get_config("cpu", "hybrid"),), "no-self-mask-init": (1.0, 2.0),
                "leak-per-mask": (config,),
                "augmentation-off": ({"every augmentation": 0.80, "crop": 0.62, "flip": 0.79, "jitter": 0.75},), "paired-error": (0.3, 0.2), "class-mean-near-ood": (0.7, 0.8),
                "share-vs-equal": ({1.0: 0.5},),
                "lambda-ten-probe": (sweep(**{"3": (0.8, 0.9), "10": (0.8, 0.9), "inf": (0.9, None)}),),
                "lambda-ten-bits": (sweep(**{"3": (0.8, 0.9), "10": (0.8, 0.9), "inf": (0.9, None)}),)}
    assert set(measured) == set(PREDICTIONS)
    for name, args in measured.items():
        assert PREDICTIONS[name].outcome(*args) in PREDICTIONS[name].choices, name


def test_a_prediction_that_cannot_be_written_is_said_not_kept(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HYBRIDLIB_RESULTS", str(blocker))  # a file where the results folder should be
    record("paired-error", "smaller", get_config("smoke", "hybrid"))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "not kept" in out


def test_a_damaged_file_is_left_alone_and_named(config, capsys):
    predictions_path(config).parent.mkdir(parents=True)
    predictions_path(config).write_text("{not json")
    with pytest.raises(OSError, match="move it aside"):
        record("paired-error", "smaller", config)
    assert predictions_path(config).read_text() == "{not json"
    for not_predictions in ("[1, 2]", '{"paired-error": {"question": "q"}}',
                            '{"paired-error": {"prediction": null}}', '{"paired-error": {"prediction": "smaller"}}'):
        predictions_path(config).write_text(not_predictions)
        with pytest.raises(OSError, match="not a file of predictions"):
            table(config)


def test_the_table_and_the_command_line_show_what_was_recorded(config, capsys):
    assert "no predictions recorded" in table(config)
    record("paired-error", "larger", config)
    reveal("paired-error", config, 0.002, 0.004)
    record("share-vs-equal", "above", config)
    capsys.readouterr()
    code, out, _ = cli(capsys, "predictions", "--profile", "smoke")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("| paired") or line.startswith("| share")]
    assert rows[0].endswith("| larger | 0 | smaller | no |") and rows[1].endswith("| above | 0 | – | – |")
    assert json.loads(predictions_path(config).read_text()).keys() == {"paired-error", "share-vs-equal"}


def code_cells(notebook: Path):
    return [c.source for c in jupytext.read(notebook, fmt="py:percent").cells if c.cell_type == "code"]


def test_every_prediction_is_a_none_placeholder_recorded_before_its_outcome_is_shown():
    recorded = []
    for notebook in NOTEBOOKS:
        cells = code_cells(notebook)
        text = "\n".join(cells)  # the cells in order: a record's place against the first reveal of its name
        for name, variable in re.findall(r'predictions\.record\("([^"]+)", (\w+)', text):
            recorded.append(name)
            assert re.search(rf"^{variable} = None\b", text, re.M), f"{notebook.name}: {variable} is not None"
            shown = re.search(rf'predictions\.reveal\("{name}"|for name in \([^)]*"{name}"[^)]*\):\s+'
                              r'hl\.predictions\.reveal\(name', text)
            assert shown and text.index(f'record("{name}"') < shown.start(), f"{notebook.name}: {name}"
    assert sorted(recorded) == sorted(PREDICTIONS)


def test_an_outcome_drawn_from_a_students_answer_is_shown_only_once_the_answer_is_correct():
    for notebook in NOTEBOOKS:
        for source in code_cells(notebook):
            if "predictions.reveal(" in source and "exercises.check(" in source:
                assert "exercises.is_correct(" in source, notebook.name


def test_the_lambda_ten_predictions_are_recorded_before_the_sweep_runs():
    text = "\n".join(code_cells(REPO / "notebooks" / "06_tradeoff.py"))
    assert text.index('record("lambda-ten-probe"') < text.index("lambda_sweep(config")
    assert text.index('record("lambda-ten-bits"') < text.index("lambda_sweep(config")
