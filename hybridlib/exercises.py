"""Answer checks for the notebooks' exercises. Expected values are computed, not stored: from the
library's own functions and from the profile the notebooks run."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .config import get_config
from .losses import bits_per_dim, nt_xent


def _vocab_levels4_patch3() -> float:
    return 4 ** (3 * 3)


def _nt_xent_two_orthogonal() -> float:
    e = torch.eye(2)
    return float(nt_xent(e, e.clone(), temperature=0.5))


def _bits_per_dim_half() -> float:
    # a model that gives every true 2x2-patch token probability 1/16 = 2**-4 spends 4 bits on 4 pixels
    return float(bits_per_dim(-math.log(1 / 16), dims_per_token=4))


def _hybrid_lam_for_equal_terms() -> float:
    # at initialisation L_gen ~ ln(vocabulary) (uniform over the cpu profile's tokens) and L_con ~ ln(2N - 1)
    # (the positive among the 2N - 1 other views of a batch of N): the lambda that weighs both terms equally
    config = get_config("cpu", "hybrid")
    return math.log(config.model.vocab_size) / math.log(2 * config.train.batch_size - 1)


EXERCISES: dict[str, tuple[Callable[[], float], str]] = {
    "tokens-vocab": (_vocab_levels4_patch3, "a token is levels ** (pixels per patch)"),
    "nt-xent-orthogonal": (_nt_xent_two_orthogonal, "each row's partner has cosine 1, the two others cosine 0"),
    "bits-per-dim": (_bits_per_dim_half, "bits per token = -log2 p; divide by the pixels per token"),
    "hybrid-lambda": (_hybrid_lam_for_equal_terms, "compare ln(vocabulary) with ln(2N - 1)"),
}


def is_correct(name: str, answer: Any, rel: float = 1e-3) -> bool:
    """Whether ``answer`` matches the computed value within ``rel`` (None: unanswered, so False)."""
    return answer is not None and math.isclose(float(answer), EXERCISES[name][0](), rel_tol=rel)


def check(name: str, answer: Any, rel: float = 1e-3) -> None:
    """Print whether ``answer`` is right; unanswered (None) just says so, with a hint."""
    hint = EXERCISES[name][1]
    if answer is None:
        print(f"{name}: not answered yet (hint: {hint})")
    elif is_correct(name, answer, rel):
        print(f"{name}: correct")
    else:
        print(f"{name}: not quite (hint: {hint})")


def check_choice(answer: Any, expected: Any, hint: str) -> None:
    """For questions whose answer is read off this run's own results (a model name, a λ)."""
    if answer is None:
        print(f"not answered yet (hint: {hint})")
    elif answer == expected or (isinstance(answer, str) and answer.strip().lower() == str(expected).lower()):
        print("correct")
    else:
        print(f"not quite (hint: {hint})")
