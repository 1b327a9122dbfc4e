"""The notebooks' exercises: every check says "not answered" to the placeholder, "not quite" to a wrong answer and
"correct" to the solution; the solutions (hybridlib/solutions.py) are right, checked against the library rather
than against themselves; and no notebook gives an answer away (no solution value as a literal in a cell, no
placeholder but None, no check cell that reads the solutions)."""
from __future__ import annotations

import ast
import copy
import math
import operator
import re
import types
from pathlib import Path

import jupytext
import pytest
import numpy as np
import torch
import torch.nn.functional as F

from hybridlib import exercises, solutions
from hybridlib.augment import random_views
from hybridlib.config import PROFILES, get_config
from hybridlib.evaluate import expected_calibration_error
from hybridlib.exercises import CODE_EXERCISES, EXERCISES, check, is_correct, verdict
from hybridlib.losses import Objective, nt_xent
from hybridlib.model import HybridTransformer
from hybridlib.probes import knn_distance
from hybridlib.tokenizer import GrayTokenizer

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (REPO / "notebooks").glob("0[1-6]_*.py"))
ALL = {**EXERCISES, **CODE_EXERCISES}
# what each exercise's solution is computed from: the notebook's configuration, for answers that depend on it
NEEDS_CONFIG = {"one-by-one-patches", "mask-off-by-one"}
# and notebook 4's inputs, on the smoke profile: its configuration, a batch of clean tokens and two views, the seed
_SMOKE = get_config("smoke", "hybrid")
_TOKENS = torch.randint(0, _SMOKE.model.vocab_size, (3, 8, _SMOKE.model.seq_len),
                        generator=torch.Generator().manual_seed(0))
GIVEN = {"pool-last-terms": (_SMOKE, *_TOKENS, 0)}


def configs():
    return [get_config(p, "hybrid") for p in PROFILES]


def givens(name: str) -> list[tuple]:
    return [(c,) for c in configs()] if name in NEEDS_CONFIG else [GIVEN.get(name, ())]


def right_answer(name: str, *given):
    """What a student who solved the exercise would pass to the check."""
    if name == "one-by-one-patches":
        return tuple(solutions.one_by_one_patches(*given).values())
    if name == "nt-xent-no-self-mask":
        return solutions.nt_xent_without_self_mask
    if name == "leaky-attention":
        return solutions.leaky_attention
    if name == "class-mean-ood":
        return solutions.class_mean_distance
    if name == "ece-equal-mass":
        return solutions.ece_equal_mass
    if name == "pareto-front":
        return solutions.pareto_front
    if name == "paired-difference":
        return solutions.paired_difference
    if name == "contrastive-share":
        return solutions.contrastive_share
    return ALL[name].solution(*given)


def wrong_answers(name: str, *given) -> list:
    """Plausible mistakes, each of which the check must reject."""
    right = right_answer(name, *given)
    if name == "one-by-one-patches":
        seq_len, vocab, ratio = right
        return [(seq_len, vocab, math.sqrt(ratio) + 1), (seq_len // 4 or 2, vocab, ratio), (seq_len, vocab ** 4, ratio),
                (seq_len, vocab), "64"]
    if name == "nt-xent-no-self-mask":
        def raises(z1, z2, tau):
            raise ValueError("not written yet")
        return [nt_xent, lambda z1, z2, tau: nt_xent(z1, z2, tau) + 0.1, raises, 3.0]
    if name == "class-mean-ood":
        def normalised_first(f, y, q):  # normalising each feature before averaging: another direction per class
            return solutions.class_mean_distance(F.normalize(torch.from_numpy(f), dim=1).numpy(), y, q)

        def nearest_mean_similarity(f, y, q):  # forgot the "1 -": the more typical, the higher
            return 1 - solutions.class_mean_distance(f, y, q)

        def one_score(f, y, q):
            return float(solutions.class_mean_distance(f, y, q).mean())

        return [normalised_first, nearest_mean_similarity, lambda f, y, q: knn_distance(f, q, k=5), one_score,
                lambda f, y, q: f.sum(), 0.5]
    if name == "ece-equal-mass":
        def raises(probs, labels, n_bins):
            raise ValueError("not written yet")
        return [lambda probs, labels, n_bins: expected_calibration_error(probs, labels, n_bins),
                lambda probs, labels, n_bins: solutions.ece_equal_mass(probs, labels, 2 * n_bins),
                lambda probs, labels, n_bins: solutions.ece_equal_mass(probs, labels, n_bins) * np.ones(3),
                raises, 0.05]
    if name == "pool-last":
        return ["gen_nll", "generative", "both", 0]
    if name == "leaky-attention":
        return [lambda q, k, v: _attention(q, k, v, 1), lambda q, k, v: _attention(q, k, v, 3),
                lambda q, k, v: (q @ k.transpose(-2, -1)).softmax(-1) @ v, lambda q, k, v: v[..., :1], 0]
    if name == "pool-last-terms":
        config, clean, v1, v2, seed = given
        torch.manual_seed(seed)  # the objective as the notebook builds it, pool left at "mean": the change not made
        with torch.no_grad():
            mean = Objective(HybridTransformer(config.model), config.train, config.data.dims_per_token)(clean, v1, v2)
        return [{k: float(mean[k]) for k in right}, solutions.pool_last_terms(config, clean, v1, v2, seed + 1),
                {"gen_nll": right["gen_nll"]}, "con_loss"]
    if name == "paired-difference":
        def unpaired(a, b):  # the difference with the error of two independent accuracies
            pa, pb = np.mean(a), np.mean(b)
            return pa - pb, math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))

        return [unpaired, lambda a, b: solutions.paired_difference(b, a),
                lambda a, b: solutions.paired_difference(a, b)[0], 0.01]
    if name == "contrastive-share":
        def without_lambda(gen, con, lam, params):
            return solutions.contrastive_share(gen, con, 1.0, params)

        def ratio(gen, con, lam, params):  # |g_con| / |g_gen|, not a share of the two
            share = solutions.contrastive_share(gen, con, lam, params)
            return share / (1 - share)

        def of_the_weights(gen, con, lam, params):  # the loss's weights, not the gradients'
            return lam / (1 + lam)

        return [without_lambda, ratio, of_the_weights, 0.5]
    if name == "pareto-front":
        def strict(rows, keys):  # better on every key, not "at least as good on all, better on one": ties slip in
            return sorted(r["lam"] for r in rows if not any(all(o[k] > r[k] for k in keys) for o in rows))

        def unsorted(rows, keys):
            return solutions.pareto_front(rows, keys)[::-1]

        return [strict, unsorted, lambda rows, keys: [r["lam"] for r in rows], [0.1, 1.0]]
    if name == "mask-off-by-one":
        return [1, right + 1, "two"]
    if name == "augmentations-off":
        return [{**right, "crop": {"crop_scale": 0.0}}, {**right, "jitter": {"jitter": 1.0}},
                {**right, "flip": {"hflip": True}}, {k: v for k, v in right.items() if k != "flip"},
                {**right, "crop": {"crop_scale": 1.0, "jitter": 0.0}}, {**right, "jitter": 0.0}, "crop"]
    return [right * 1.5 + 1, right / 2, "a lot"]


@pytest.mark.parametrize("name", sorted(ALL))
def test_a_check_passes_the_solution_and_rejects_the_rest(name, capsys):
    for given in givens(name):
        check(name, right_answer(name, *given), *given)
        assert capsys.readouterr().out.startswith(f"{name}: correct (the worked solution: hybridlib/solutions.py")
        assert is_correct(name, right_answer(name, *given), *given)
        for wrong in wrong_answers(name, *given):
            assert verdict(name, wrong, *given)[0] == "wrong", wrong
            check(name, wrong, *given)
            out = capsys.readouterr().out
            assert out.startswith(f"{name}: not quite") and f"(hint: {ALL[name].hint})" in out, out
        check(name, None, *given)
        assert capsys.readouterr().out == f"{name}: not answered yet (hint: {ALL[name].hint})\n"
        assert not is_correct(name, None, *given)


def test_a_partly_filled_answer_is_not_answered_yet():
    config = get_config("smoke", "hybrid")
    seq_len, vocab, ratio = right_answer("one-by-one-patches", config)
    assert verdict("one-by-one-patches", (seq_len, None, ratio), config)[0] == "unanswered"
    assert verdict("one-by-one-patches", (seq_len, vocab, ratio), config)[0] == "correct"


def test_a_wrong_part_is_named():
    config = get_config("cpu", "hybrid")
    seq_len, vocab, ratio = right_answer("one-by-one-patches", config)
    assert verdict("one-by-one-patches", (seq_len, vocab + 1, ratio), config) == ("wrong", "the vocabulary is off")


def test_the_pareto_front_of_a_small_sweep_by_hand():
    rows = [{"lam": 0.0, "a": 0.5, "b": 0.9}, {"lam": 0.3, "a": 0.7, "b": 0.7}, {"lam": 1.0, "a": 0.6, "b": 0.6},
            {"lam": 3.0, "a": 0.7, "b": 0.6}, {"lam": math.inf, "a": 0.8, "b": 0.5}]
    # λ = 1 is beaten by λ = 0.3 on both; λ = 3 ties λ = 0.3 on a and loses on b
    assert solutions.pareto_front(rows, ("a", "b")) == [0.0, 0.3, math.inf]
    assert solutions.pareto_front(rows, ("a",)) == [math.inf]


def test_a_function_that_changes_its_input_cannot_change_the_expected_answer():
    def empties_the_rows(rows, keys):
        front = solutions.pareto_front(rows, keys)
        rows.clear()
        return front

    assert is_correct("pareto-front", empties_the_rows)  # right answer, and the case is intact for the solution
    def drops_a_row_first(rows, keys):
        rows.pop()
        return solutions.pareto_front(rows, keys)

    assert not is_correct("pareto-front", drops_a_row_first)


def test_the_original_exercise_names_and_answers_still_work():
    assert {"tokens-vocab", "nt-xent-orthogonal", "bits-per-dim", "hybrid-lambda"} <= set(EXERCISES)
    assert is_correct("tokens-vocab", 262144) and is_correct("bits-per-dim", 1.0)
    assert is_correct("nt-xent-orthogonal", math.log(1 + 2 * math.exp(-2)))
    with pytest.raises(KeyError, match="no exercise"):
        check("no-such-exercise", 1)


def test_every_check_in_the_notebooks_names_an_exercise():
    named = {m for nb in NOTEBOOKS for m in re.findall(r'exercises\.check\("([^"]+)"', nb.read_text())}
    assert named == set(ALL), named ^ set(ALL)


# --- the solutions, against the library -------------------------------------------------------------------------


def test_one_by_one_patches_against_a_real_tokenizer():
    for config in configs():
        d = config.data
        if d.channels != 1:  # a palette token is one pixel already
            assert solutions.one_by_one_patches(config)["attention cost ratio"] == 1
            continue
        tokenizer = GrayTokenizer(d.levels, patch_size=1)
        tokens = tokenizer.encode(torch.rand(2, 1, d.image_size, d.image_size))
        answer = solutions.one_by_one_patches(config)
        assert answer["sequence length"] == tokens.shape[1] and answer["vocabulary"] == tokenizer.vocab_size
        assert answer["attention cost ratio"] == (tokens.shape[1] / d.seq_len) ** 2


def test_the_loss_without_self_mask_keeps_each_row_itself_as_a_candidate():
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / 0.3
    partner = torch.tensor([5, 6, 7, 8, 9, 0, 1, 2, 3, 4])
    by_hand = (torch.logsumexp(logits, dim=1) - logits[torch.arange(10), partner]).mean()
    torch.testing.assert_close(solutions.nt_xent_without_self_mask(z1, z2, 0.3), by_hand)
    # its floor: identical partners, the others opposite, is ln 2 plus a little, not the masked loss's 0 plus a little
    e = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert solutions.nt_xent_without_self_mask(e, e.clone(), 0.05).item() == pytest.approx(math.log(2), abs=1e-6)
    assert nt_xent(e, e.clone(), 0.05).item() == pytest.approx(0.0, abs=1e-6)


def _attention(q, k, v, offset):
    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(
        torch.ones(t, t, dtype=torch.bool).triu(offset), float("-inf"))
    return scores.softmax(dim=-1) @ v


def _with_mask_offset(model, offset):
    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        return self.proj(_attention(q, k, v, offset).transpose(1, 2).reshape(b, t, d))
    twin = copy.deepcopy(model).double()
    for block in [*twin.encoder, *twin.decoder]:
        block.attn.forward = types.MethodType(forward, block.attn)
    return twin


@pytest.mark.parametrize("layers", [(1, 1), (2, 1), (2, 3)])
def test_a_mask_off_by_one_leaks_one_position_per_block(layers):
    """The notebook's measurement, as notebook 3 makes it (float64 copies), on the smoke profile's shapes."""
    config = get_config("smoke", "hybrid").with_model(n_encoder_layers=layers[0], n_decoder_layers=layers[1])
    torch.manual_seed(0)
    model = HybridTransformer(config.model)
    tokens = torch.randint(0, config.model.vocab_size, (3, config.model.seq_len))
    t = config.model.seq_len // 2
    altered = tokens.clone()
    altered[:, t + 1:] = (tokens[:, t + 1:] + 1) % config.model.vocab_size

    def first_moved(m):
        with torch.no_grad():
            a, b = (m.decoder_hidden(m.forward_encoder(x)) for x in (tokens, altered))
        return int(((a - b).abs().amax(dim=(0, 2)) > 0).nonzero()[0])

    right, leaky = first_moved(_with_mask_offset(model, 1)), first_moved(_with_mask_offset(model, 2))
    assert right == t + 2
    assert is_correct("mask-off-by-one", right - leaky, config)


def test_the_leaky_attention_is_torchs_attention_with_the_next_position_let_in():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    allowed = torch.ones(7, 7, dtype=torch.bool).tril(1)  # j <= i + 1
    torch.testing.assert_close(solutions.leaky_attention(q, k, v),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))


def test_pooling_the_last_position_moves_only_the_contrastive_term():
    config = get_config("smoke", "hybrid")
    tokens = [torch.randint(0, config.model.vocab_size, (8, config.model.seq_len)) for _ in range(3)]
    terms = {}
    for pool in ("mean", "last"):
        torch.manual_seed(0)
        c = config.with_model(pool=pool)
        with torch.no_grad():
            terms[pool] = Objective(HybridTransformer(c.model), c.train, c.data.dims_per_token)(*tokens)
    assert torch.equal(terms["mean"]["gen_nll"], terms["last"]["gen_nll"])
    # apart by more than the check's tolerance: an answer with the change not made is not taken for the right one
    assert not math.isclose(terms["mean"]["con_loss"], terms["last"]["con_loss"], rel_tol=1e-3)
    assert is_correct("pool-last", "con_loss") and solutions.pool_last_changes() == "con_loss"
    last = solutions.pool_last_terms(config, *tokens, 0)
    assert last == {key: float(terms["last"][key]) for key in ("gen_nll", "con_loss")}


def test_the_class_mean_score_with_one_image_per_class_is_the_nearest_neighbour_distance():
    """One training feature per class: its class mean is itself, and the score is the library's kNN distance, k = 1."""
    g = torch.Generator().manual_seed(2)
    train, query = torch.randn(6, 5, generator=g).numpy(), torch.randn(9, 5, generator=g).numpy()
    scores = solutions.class_mean_distance(train, np.arange(6), query)
    np.testing.assert_allclose(scores, knn_distance(train, query, k=1), rtol=1e-5, atol=1e-6)
    # two images per class: the mean of the two, not either one
    two = np.r_[train, -train[:, ::-1]]
    means = (train - train[:, ::-1]) / 2
    np.testing.assert_allclose(solutions.class_mean_distance(two, np.r_[np.arange(6), np.arange(6)], query),
                               knn_distance(means, query, k=1), rtol=1e-5, atol=1e-6)


def test_equal_mass_bins_agree_with_the_library_where_the_bins_coincide():
    """Two images in each of 5 equal-width bins: equal-mass bins are the same groups, so the ECEs agree; one bin:
    both are |accuracy - mean confidence|."""
    confidence = np.array([0.15, 0.18, 0.25, 0.3, 0.45, 0.5, 0.65, 0.7, 0.85, 0.95])
    probs = np.tile(((1 - confidence) / 9)[:, None], (1, 10))
    top = np.arange(10) % 10
    probs[np.arange(10), top] = confidence
    labels = np.where(np.arange(10) % 3 == 0, top, (top + 1) % 10)
    assert solutions.ece_equal_mass(probs, labels, 5) == pytest.approx(expected_calibration_error(probs, labels, 5))
    g = torch.Generator().manual_seed(3)
    probs = torch.softmax(2 * torch.randn(50, 4, generator=g), dim=1).numpy()
    labels = torch.randint(0, 4, (50,), generator=g).numpy()
    assert solutions.ece_equal_mass(probs, labels, 1) == pytest.approx(expected_calibration_error(probs, labels, 1))
    assert solutions.ece_equal_mass(probs, labels) != pytest.approx(expected_calibration_error(probs, labels))


# --- the notebooks give nothing away ----------------------------------------------------------------------------


class _NotConstant(Exception):
    pass


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _fold(node: ast.AST) -> float:
    """The value of an expression made of number literals, arithmetic and math.* calls; _NotConstant otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _fold(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _fold(node.left), _fold(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise _NotConstant
        try:
            return _OPS[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError):
            raise _NotConstant
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            isinstance(node.func.value, ast.Name) and node.func.value.id == "math" and not node.keywords:
        try:
            return float(getattr(math, node.func.attr)(*[_fold(a) for a in node.args]))
        except (AttributeError, TypeError, ValueError, OverflowError):
            raise _NotConstant
    raise _NotConstant


def constants(code: str) -> list[float]:
    """Every number a cell writes down or computes from literals alone (``4 ** 9``, ``math.log(1 + 2 * ...)``)."""
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    out = []
    for node in ast.walk(ast.parse(code)):
        try:
            value = _fold(node)
        except _NotConstant:
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append(value)
    return out


def solution_values() -> dict[str, list[float]]:
    """Each exercise's numeric answers, for every profile where they depend on it."""
    values: dict[str, list[float]] = {}
    for name in ALL:
        for given in givens(name):
            answer = right_answer(name, *given)
            parts = answer if isinstance(answer, tuple) else (answer,)
            values.setdefault(name, []).extend(float(v) for v in parts if isinstance(v, (int, float)))
    return values


def distinctive(value: float) -> bool:
    """A value that would give an answer away wherever it appears; small whole numbers (a 2, a 16, a 1.0) occur
    in any code and are checked only in the exercise's own cells."""
    return value != int(value) or abs(value) > 1024


def cells(notebook: Path):
    return jupytext.read(notebook, fmt="py:percent").cells


def _matches(found: float, value: float) -> bool:
    return math.isclose(found, value, rel_tol=1e-3)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_cell_gives_a_solution_away(notebook):
    values = solution_values()
    for i, cell in enumerate(cells(notebook)):
        if cell.cell_type == "code":
            found = constants(cell.source)
            names = set(re.findall(r'exercises\.check\("([^"]+)"', cell.source))
        else:
            found = [float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", cell.source)]
            names = set()
        for name, answers in values.items():
            for value in answers:
                if name in names or distinctive(value):
                    hits = [f for f in found if _matches(f, value)]
                    assert not hits, f"cell {i} of {notebook.name} holds {hits[0]}, an answer of {name}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_check_cells_hold_placeholders_only(notebook):
    checks = [c for c in cells(notebook) if c.cell_type == "code" and "exercises.check(" in c.source]
    assert len(checks) >= 2, f"{notebook.name}: at least one exercise besides the one worked out by hand"
    for cell in checks:
        assert "solution" not in cell.source, "a check cell must not read the solutions"
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.Tuple)):
                items = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
                assert all(isinstance(v, ast.Constant) and v.value is None for v in items), ast.unparse(node)


def test_solutions_live_in_one_module():
    for exercise in ALL.values():
        assert exercise.solution.__module__ == solutions.__name__
    assert exercises.SOLUTIONS_FILE == "hybridlib/solutions.py" and (REPO / exercises.SOLUTIONS_FILE).exists()


@pytest.mark.parametrize("answer, expected, right", [
    (0.24, 0.23954, True), ("0.24", 0.23954, True), (np.float64(0.2395), 0.23954, True), (0.2395, 0.23954, True),
    (0.23, 0.23954, False), (0.25, 0.23954, False), (0.2, 0.23954, False), (256, 256, True), (255, 256, False),
    (2.6e5, 262144, False), (262144, 262144.0, True), (1.2e-5, 1.23e-5, True), (1.3e-5, 1.23e-5, False),
    (math.inf, math.inf, True), (math.nan, 0.5, False)])
def test_a_number_rounded_to_the_digits_typed_is_right(answer, expected, right):
    assert (exercises._number(answer, expected, 1e-3) is None) is right


def test_too_few_digits_are_told_apart_from_a_wrong_number():
    assert "two significant digits" in exercises._number(0.2, 0.2395, 1e-3)
    assert exercises._number(0.3, 0.2395, 1e-3) == ""


def test_the_paired_error_is_below_either_accuracys_when_the_probes_agree_on_most_images():
    rng = np.random.default_rng(1)
    a = rng.random(10000) < 0.84
    b = np.where(rng.random(10000) < 0.04, ~a, a)
    d, se = solutions.paired_difference(a, b)
    assert d == pytest.approx(a.mean() - b.mean())
    assert se == pytest.approx(math.sqrt(np.mean(a != b) - d ** 2) / 100)  # var(d) = P(a != b) - d², n = 10 000
    assert se < 0.6 * math.sqrt(a.mean() * (1 - a.mean()) / len(a))
    assert solutions.paired_difference(a, a) == (0.0, 0.0)


def test_the_contrastive_share_against_gradients_worked_out_by_hand():
    """L_gen = |w|² has gradient 2w; L_con = a · w has gradient a: the share is λ|a| / (2|w| + λ|a|)."""
    w = torch.tensor([3.0, 4.0], requires_grad=True)  # |2w| = 10
    a = torch.tensor([0.0, 5.0])  # |a| = 5
    for lam, share in ((1.0, 5 / 15), (2.0, 10 / 20), (0.0, 0.0)):
        assert solutions.contrastive_share((w ** 2).sum(), (a * w).sum(), lam, [w]) == pytest.approx(share)


def test_the_augmentations_switched_off_leave_the_images_as_they_are():
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    settings = solutions.augmentations_off()
    every_one_off = {k: v for one in settings.values() for k, v in one.items()}
    torch.testing.assert_close(random_views(images, torch.Generator().manual_seed(1), **every_one_off), images)
    for name, one in settings.items():  # this one on at its default, the other two off: the views differ
        others_off = {k: v for other, settings_of in settings.items() if other != name for k, v in settings_of.items()}
        assert not torch.allclose(random_views(images, torch.Generator().manual_seed(1), **others_off), images), name
        get_config("cpu", "contrastive").with_train(**one)  # a valid training setting
