"""Answer checks for the notebooks' exercises.

The expected answers are not here and not in the notebooks: each is computed by a function of
:mod:`hybridlib.solutions` (the worked solutions, to read after trying), from the library's own functions and,
where the answer depends on the profile, from the configuration the notebook passes in.

- :data:`EXERCISES`: questions answered with one number worked out by hand.
- :data:`CODE_EXERCISES`: exercises that ask for a change to the notebook's code; the answer is what the changed
  code gives (several numbers, a function, the name of a loss term). A function is compared with the solution's
  function on a few fixed inputs.

``check(name, answer, *given)`` prints one line: not answered yet (``None``), not quite (with a hint), or correct.
"""
from __future__ import annotations

import copy
import decimal
import math
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from . import solutions

SOLUTIONS_FILE = "hybridlib/solutions.py"


def _typed_half_unit(answer: Any) -> float:
    """Half a unit in the last digit ``answer`` was written with: 0.005 for 0.24, 0.5 for 256, 5e-6 for 1e-05."""
    text = answer.strip() if isinstance(answer, str) else str(answer) if isinstance(answer, (int, np.integer)) \
        else repr(float(answer))
    return 0.5 * 10.0 ** decimal.Decimal(text).as_tuple().exponent


def _number(answer: Any, expected: float, rel: float) -> str | None:
    """None when ``answer`` is ``expected`` within ``rel``, or is ``expected`` rounded to the digits it was written
    with (0.24 for 0.23954) where those are at least two significant digits; else what is wrong with it."""
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return f"expected a number, got {answer!r}"
    expected = float(expected)
    if math.isclose(value, expected, rel_tol=rel):
        return None
    if not math.isfinite(value):
        return ""
    half_unit = _typed_half_unit(answer)
    if abs(value - expected) > half_unit:
        return ""
    return None if half_unit <= 0.05 * abs(expected) else "right as far as it goes: give two significant digits"


def _numbers(answer: Any, expected: dict[str, float], rel: float) -> str | None:
    """Several named numbers, answered as a tuple in the order of ``expected``."""
    if not isinstance(answer, (tuple, list)) or len(answer) != len(expected):
        return f"expected {len(expected)} numbers: {', '.join(expected)}"
    off = [name for value, (name, right) in zip(answer, expected.items()) if _number(value, right, rel) is not None]
    return f"the {' and the '.join(off)} {'is' if len(off) == 1 else 'are'} off" if off else None


def _loss_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """A function (z1, z2, temperature) -> loss, compared with the solution on a few fixed inputs."""
    if not callable(answer):
        return f"expected a function (z1, z2, temperature) -> loss, got {answer!r}"
    g = torch.Generator().manual_seed(0)
    for n, dim, temperature in ((4, 8, 0.5), (8, 16, 0.2)):
        z1 = torch.randn(n, dim, generator=g)
        z2 = z1 + 0.5 * torch.randn(n, dim, generator=g)  # partners alike, as after some training
        try:
            mine = float(answer(z1.clone(), z2.clone(), temperature))
        except Exception as e:  # a student's function may fail in any way: say how, do not raise
            return f"your function raised {type(e).__name__}: {e}"
        if not math.isclose(mine, float(expected(z1, z2, temperature)), rel_tol=rel, abs_tol=1e-6):
            return f"for N = {n}, temperature {temperature} it gives {mine:.4f}"
    return None


def _same_outputs(answer: Any, expected: Callable[..., Any], cases: list[tuple], what: str, rel: float) -> str | None:
    """A function compared with the solution on ``cases`` (tuples of arguments, each passed as a fresh copy)."""
    if not callable(answer):
        return f"expected a function {what}, got {answer!r}"
    for args in cases:
        right = np.asarray(expected(*copy.deepcopy(args)), dtype=float)
        try:  # on its own copy: a function that changes its inputs cannot change the case
            mine = np.asarray(answer(*copy.deepcopy(args)), dtype=float)
        except Exception as e:  # a student's function may fail in any way: say how, do not raise
            return f"your function raised {type(e).__name__}: {e}"
        if mine.shape != right.shape:
            return f"expected {'one number' if right.ndim == 0 else f'an array of shape {right.shape}'}, " \
                   f"got shape {mine.shape}"
        if not np.allclose(mine, right, rtol=rel, atol=1e-5):
            return f"on a test input it gives {np.round(mine.ravel()[:3], 4).tolist()}"
    return None


def _attention_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """An attention (q, k, v) -> output, on a few sets of float64 queries, keys and values (B, heads, T, head size)."""
    g = torch.Generator().manual_seed(0)
    cases = [tuple(torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
             for shape in ((2, 2, 6, 4), (1, 3, 9, 8))]
    return _same_outputs(answer, expected, cases, "(q, k, v) -> output", rel)


def _terms(answer: Any, expected: dict[str, float], rel: float) -> str | None:
    """An objective's terms ("gen_nll", "con_loss"), as the objective returns them (a dict of numbers)."""
    if not isinstance(answer, dict):
        return f"expected the objective's terms, a dict with {' and '.join(expected)}, got {answer!r}"
    missing = [key for key in expected if key not in answer]
    if missing:
        return f"the terms have no {' and no '.join(missing)}"
    off = [key for key, value in expected.items() if _number(answer[key], value, rel) is not None]
    return f"the {' and the '.join(off)} {'is' if len(off) == 1 else 'are'} not the changed objective's" if off \
        else None


def _score_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """An OOD score (train features (N, D), train labels (N,), query features (M, D)) -> (M,) scores, on a few
    clustered feature sets."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for n_classes, dim in ((3, 4), (5, 16)):
        labels = torch.arange(60) % n_classes
        train = 2 * torch.randn(n_classes, dim, generator=g)[labels] + torch.randn(60, dim, generator=g)
        cases.append((train.numpy(), labels.numpy(), 2 * torch.randn(20, dim, generator=g).numpy()))
    return _same_outputs(answer, expected, cases, "(train_features, train_labels, query_features) -> scores", rel)


def _paired_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """(correct_a (n,), correct_b (n,)) booleans -> (difference, standard error), on two pairs of probes that agree
    on most images (n large enough that std's ddof = 0 or 1 does not matter)."""
    rng = np.random.default_rng(0)
    cases = []
    for n, p_a, flip in ((4000, 0.8, 0.05), (10000, 0.6, 0.2)):
        a = rng.random(n) < p_a
        cases.append((a, np.where(rng.random(n) < flip, ~a, a)))  # b: a with a share of the images flipped
    return _same_outputs(answer, expected, cases, "(correct_a, correct_b) -> (difference, standard error)", rel)


def _calibration_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """A calibration error (probs (N, K), labels (N,), n_bins) -> a number, on a few sets of probabilities."""
    g = torch.Generator().manual_seed(0)
    cases = []
    for n, k, n_bins in ((200, 4, 15), (333, 10, 10)):
        probs = torch.softmax(3 * torch.randn(n, k, generator=g), dim=1)
        cases.append((probs.numpy(), torch.randint(0, k, (n,), generator=g).numpy(), n_bins))
    return _same_outputs(answer, expected, cases, "(probs, labels, n_bins) -> a number", rel)


def _share_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """(gen_loss, con_loss, lam, params) -> the contrastive share of the gradient, on small losses of two parameter
    tensors, each case built afresh for each function (a loss's graph cannot be copied)."""
    if not callable(answer):
        return f"expected a function (gen_loss, con_loss, lam, params) -> a number, got {answer!r}"

    def case(seed: int, lam: float) -> tuple[Tensor, Tensor, float, list[Tensor]]:
        g = torch.Generator().manual_seed(seed)
        w = [torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
        x = torch.randn(3, generator=g)
        return ((w[0] @ x) ** 2).sum() + w[1].sum() ** 2, w[0].sin().sum() + 2 * w[1].sum(), lam, w

    for seed, lam in ((0, 0.1), (1, 1.0), (2, 3.0)):
        try:
            mine = float(answer(*case(seed, lam)))
        except Exception as e:  # a student's function may fail in any way: say how, do not raise
            return f"your function raised {type(e).__name__}: {e}"
        if not math.isclose(mine, float(expected(*case(seed, lam))), rel_tol=rel, abs_tol=1e-6):
            return f"at λ = {lam} it gives {mine:.4f}"
    return None


def _front_function(answer: Any, expected: Callable[..., Any], rel: float) -> str | None:
    """A Pareto front (rows of a sweep, keys) -> the sorted λ of the undominated rows, on a few made-up sweeps."""
    rng = np.random.default_rng(0)
    cases = []
    for keys in (("linear_probe_acc", "ood_auroc_near"), ("linear_probe_acc", "ood_auroc_near", "knn_acc")):
        for _ in range(3):
            lams = [0.0, 0.1, 0.3, 1.0, 3.0, math.inf]
            rows = [{"lam": lam, **{k: float(v) for k, v in zip(keys, rng.integers(0, 5, len(keys)) / 10)}}
                    for lam in lams]  # coarse values: ties, as in a real table, are part of the test
            cases.append((rows, keys))
    return _same_outputs(answer, expected, cases, "(rows, keys) -> a sorted list of λ", rel)


_TERM_NAMES = {"con_loss": {"con_loss", "con", "contrastive", "l_con", "lcon", "nt_xent", "ntxent"},
               "gen_nll": {"gen_nll", "gen", "generative", "l_gen", "lgen", "bits_per_dim"}}


def _term(answer: Any, expected: str, rel: float) -> str | None:
    """The name of a loss term ("con_loss" or "gen_nll"; "contrastive", "L_con" ... are taken too)."""
    if not isinstance(answer, str):
        return f'expected the name of a term, "con_loss" or "gen_nll", got {answer!r}'
    word = answer.strip().lower().replace(" ", "_").replace("-", "_")
    return None if word in _TERM_NAMES[expected] else ""


def _settings(answer: Any, expected: dict[str, dict[str, Any]], rel: float) -> str | None:
    """A dict from each augmentation's name to the training settings that switch it off."""
    if not isinstance(answer, dict) or set(answer) != set(expected):
        return f"expected a dict with the keys {', '.join(map(repr, expected))}"
    off = [name for name, settings in expected.items()
           if not isinstance(answer[name], dict) or answer[name] != settings]
    return f"the settings of {' and '.join(off)} are off" if off else None


class Exercise(NamedTuple):
    """An exercise's solution (a function of :mod:`hybridlib.solutions`), the hint shown with a wrong or missing
    answer, and how an answer is compared with the solution's value (None: right; else a note on what is off)."""
    solution: Callable[..., Any]
    hint: str
    compare: Callable[[Any, Any, float], str | None] = _number


EXERCISES: dict[str, Exercise] = {
    "tokens-vocab": Exercise(solutions.tokens_vocab, "a token is levels ** (pixels per patch)"),
    "nt-xent-orthogonal": Exercise(solutions.nt_xent_orthogonal,
                                   "each row's partner has cosine 1, the two others cosine 0"),
    "bits-per-dim": Exercise(solutions.bits_per_dim_one_sixteenth,
                             "bits per token = -log2 p; divide by the pixels per token"),
    "hybrid-lambda": Exercise(solutions.hybrid_lambda, "compare ln(vocabulary) with ln(2N - 1)"),
}

CODE_EXERCISES: dict[str, Exercise] = {
    "one-by-one-patches": Exercise(
        solutions.one_by_one_patches,
        "a 1x1 patch is one pixel; attention compares every position with every other (T x T scores, "
        "leave out the start token)", _numbers),
    "nt-xent-no-self-mask": Exercise(
        solutions.nt_xent_without_self_mask,
        "copy nt_xent_from_scratch and delete only the masked_fill line; everything else stays", _loss_function),
    "augmentations-off": Exercise(
        solutions.augmentations_off,
        "each augmentation has one setting in TrainConfig (hybridlib/config.py): crop_scale, the smallest share of the "
        "image a crop keeps; hflip; jitter, the range of the brightness and contrast factors. Give each the value "
        "that does nothing", _settings),
    "leaky-attention": Exercise(
        solutions.leaky_attention,
        "copy attention and move the mask's diagonal: triu(1) hides j > i, the future", _attention_function),
    "mask-off-by-one": Exercise(
        solutions.mask_off_by_one,
        "each attention layer lets a position see one token further ahead, and the model has several blocks",
        _number),
    "pool-last-terms": Exercise(
        solutions.pool_last_terms,
        'build the objective as the inputs cell does, from config.with_model(pool="last") and after '
        'torch.manual_seed(SEED), then call it on clean, v1, v2', _terms),
    "pool-last": Exercise(
        solutions.pool_last_changes,
        "which branch reads the pooled representation, and which reads the encoder's whole sequence?", _term),
    "class-mean-ood": Exercise(
        solutions.class_mean_distance,
        "average the raw training features of each class (no normalising before the mean), then score a query by "
        "1 - its largest cosine similarity with a class mean", _score_function),
    "paired-difference": Exercise(
        solutions.paired_difference,
        "d = correct_a.astype(float) - correct_b.astype(float), one number per image; return its mean and "
        "d.std() / np.sqrt(len(d))", _paired_function),
    "ece-equal-mass": Exercise(
        solutions.ece_equal_mass,
        "sort the images by confidence (np.argsort), split the order with np.array_split(order, n_bins), then "
        "weigh each group's |accuracy - confidence| by its size, as ece_by_hand does", _calibration_function),
    "contrastive-share": Exercise(
        solutions.contrastive_share,
        "torch.autograd.grad(gen_loss, params, retain_graph=True) gives ∇L_gen, one tensor per parameter; the norm "
        "over all of them is the square root of their summed squares; λ scales ∇L_con", _share_function),
    "pareto-front": Exercise(
        solutions.pareto_front,
        "write dominates(a, b): a >= b on every key and a > b on one; keep the rows no other row dominates, and "
        "return their λ sorted", _front_function),
}

_FUNCTION_COMPARES = (_loss_function, _attention_function, _score_function, _paired_function,
                      _calibration_function, _share_function, _front_function)  # the answer is a function


def _exercise(name: str) -> Exercise:
    if name in EXERCISES:
        return EXERCISES[name]
    if name in CODE_EXERCISES:
        return CODE_EXERCISES[name]
    raise KeyError(f"no exercise {name!r}; the exercises are: {', '.join([*EXERCISES, *CODE_EXERCISES])}")


def unanswered(answer: Any) -> bool:
    """The placeholder: None, or a tuple with None in it."""
    return answer is None or (isinstance(answer, (tuple, list)) and any(a is None for a in answer))


def verdict(name: str, answer: Any, *given: Any, rel: float = 1e-3) -> tuple[str, str]:
    """("unanswered" | "wrong" | "correct", a note on what is off). ``given``: what the solution is computed from
    (the notebook's configuration, for answers that depend on the profile)."""
    exercise = _exercise(name)
    if unanswered(answer):
        return "unanswered", ""
    # a function is compared with the solution's function; anything else with the solution's value
    expected = exercise.solution if exercise.compare in _FUNCTION_COMPARES else exercise.solution(*given)
    note = exercise.compare(answer, expected, rel)
    return ("correct", "") if note is None else ("wrong", note)


def is_correct(name: str, answer: Any, *given: Any, rel: float = 1e-3) -> bool:
    """Whether ``answer`` matches the solution (numbers within ``rel``; None: unanswered, so False)."""
    return verdict(name, answer, *given, rel=rel)[0] == "correct"


def check(name: str, answer: Any, *given: Any, rel: float = 1e-3) -> None:
    """Print whether ``answer`` is right; unanswered (None) just says so, with a hint."""
    exercise = _exercise(name)
    outcome, note = verdict(name, answer, *given, rel=rel)
    if outcome == "unanswered":
        print(f"{name}: not answered yet (hint: {exercise.hint})")
    elif outcome == "wrong":
        print(f"{name}: not quite{': ' + note if note else ''} (hint: {exercise.hint})")
    else:
        print(f"{name}: correct (the worked solution: {SOLUTIONS_FILE}, {exercise.solution.__name__})")
