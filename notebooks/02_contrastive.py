# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Contrastive only (SimCLR's NT-Xent)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/02_contrastive.ipynb)
#
# **Learning goals**
#
# - write NT-Xent from scratch, check it against the library, and know its value at initialisation and its floor;
# - train the encoder with it alone (the decoder is never used);
# - read the loss curve and look at what the representation retrieves;
# - find out which augmentation the contrastive task needs most (exercise 3).
#
# **Running it.** The parameters cell below is what papermill and `make reproduce` set: `PROFILE` None means
# `$HYBRIDLIB_PROFILE`, else `auto` (by the hardware); `smoke` runs in seconds, `cpu` gives real results on a laptop,
# `gpu-small` is CIFAR-10 at 16x16 for a free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU. `STEPS` None is the
# profile's budget; fewer give a quick live run, kept apart from the full run. `TEMPERATURE` is NT-Xent's τ (None:
# the profile's). `OVERRIDES` takes any other setting of `hybridlib.get_config`, e.g. `{"batch_size": 64}`. On Colab the setup cell after it clones the repository, with the trained weights that ship with it, and
# `PROFILE` None means the `cpu` profile there, so models load instead of training (`PROFILE = "gpu-small"` on a GPU
# runtime trains CIFAR-10); elsewhere it does nothing of the kind (`make lab`).

# %% tags=["parameters"]
PROFILE, SEED, STEPS = None, 0, None
TEMPERATURE = None  # NT-Xent's τ; None: the profile's
OVERRIDES = {}

# %% [markdown]
# **Setup**: the configuration, resolved once, and the data.

# %%
# %matplotlib inline
import os, subprocess, sys  # on Colab: clone the repository (the library, its shipped weights) and import from it
REPO_URL, HOME = "https://github.com/hybridlib/hybridlib", "/content/hybridlib"  # a fork: `make repo-url URL=...`
if "google.colab" in sys.modules and HOME not in sys.path:
    if not os.path.isdir(HOME) and subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, HOME]).returncode:
        raise SystemExit(f"could not clone {REPO_URL}; upload a copy of the repository to {HOME}, then rerun this cell")
    sys.path.insert(0, HOME)
import hybridlib as hl
import torch
from hybridlib import plots

config, data = hl.setup("contrastive", PROFILE, SEED, steps=STEPS, temperature=TEMPERATURE, **OVERRIDES)

# %% [markdown]
# ## The loss
# For a batch of N images, two views give 2N projections $z$. For a view $i$ with partner $j$:
#
# $$\ell_i = -\log \frac{\exp(\cos(z_i, z_j)/\tau)}{\sum_{k \ne i} \exp(\cos(z_i, z_k)/\tau)}$$
#
# and the loss is the mean over all 2N. At initialisation nothing has been learned, every one of the $2N-1$
# candidates is about equally likely, and the loss is close to $\ln(2N-1)$. How low it can go is worked out below:
# not to 0.
#
# **NT-Xent from scratch**, step by step as `nt_xent` in [hybridlib/losses.py](../hybridlib/losses.py) does it:
# unit vectors, every pairwise cosine over τ, a mask so that no view is its own candidate, each row's partner, and
# the cross-entropy of each row against its partner.

# %%
import math
import torch.nn.functional as F
from hybridlib.losses import nt_xent

def nt_xent_from_scratch(z1, z2, tau):
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, p) unit vectors: the N first views, then the N second views
    sim = z @ z.T / tau  # (2N, 2N) cosine of every pair, over the temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))  # a view is not a candidate for itself: exp(-inf) = 0
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])  # row k's partner is row k + N, and back
    return F.cross_entropy(sim, partner)  # the mean over the 2N rows of -log softmax(row)[partner]

# %% [markdown]
# ## At initialisation
# The untrained model (the weights this notebook's training starts from) projects two augmented views of N real
# training images, and the loss is taken at the profile's temperature. The from-scratch loss must equal the
# library's. The loss is near ln(2N − 1) but not on it: an untrained network already maps the two views of one image
# a little closer together than two different images (a higher partner cosine pulls the loss below ln(2N − 1)),
# while the spread of the negatives' cosines pushes it up (a log-sum-exp is at least the mean of its terms).

# %%
from hybridlib.step import make_views, step_generator
torch.manual_seed(SEED)
fresh = hl.HybridTransformer(config.model)  # the weights training starts from
n, tau = config.train.batch_size, config.train.temperature
v1, v2 = make_views(data.train_images[:n], data.tokenizer, config.train, step_generator(SEED, 0, 0))  # (N, T) each
with torch.no_grad():
    z1, z2 = fresh(v1, decode=False)[2], fresh(v2, decode=False)[2]  # (N, p) projections of the two views
torch.testing.assert_close(nt_xent_from_scratch(z1, z2, tau), nt_xent(z1, z2, tau))
loss0 = nt_xent(z1, z2, tau).item()
z = F.normalize(torch.cat([z1, z2]), dim=1)
cos = z @ z.T
partner_cos = torch.diagonal(cos, n).mean().item()
negative_cos = ((cos.sum() - cos.trace() - 2 * torch.diagonal(cos, n).sum()) / (2 * n * (2 * n - 2))).item()
print(f"from scratch = library. Untrained model, tau = {tau}: loss {loss0:.3f}, ln(2N - 1) = {math.log(2 * n - 1):.3f}")
print(f"mean cosine with the partner {partner_cos:.3f}, with a negative {negative_cos:.3f}")
print("within 15 % of ln(2N - 1):", abs(loss0 - math.log(2 * n - 1)) < 0.15 * math.log(2 * n - 1))

# %% [markdown]
# ## How low can it go?
# Not to 0: a cosine is at most 1, and 2N unit vectors cannot all be far from each other at once. Write $s_+$ for
# the mean cosine of a view with its partner and $\bar s$ for its mean cosine with one of the $2N-2$ negatives.
#
# 1. The sum of the projections has a squared length of at least 0:
#    $\|\sum_i z_i\|^2 = 2N + 2N s_+ + 2N(2N-2)\,\bar s \ge 0$, so $\bar s \ge -(1 + s_+)/(2N-2)$.
# 2. Each term is $\ell_i = \log\big(1 + \sum_{k \ne i, j} e^{(s_{ik} - s_{ij})/\tau}\big)$. Both $e^x$ and
#    $\log(1 + c\,e^x)$ are convex, so (Jensen) the mean loss is at least its value with every cosine replaced by
#    its mean: $\mathcal L \ge \log\big(1 + (2N-2)\,e^{(\bar s - s_+)/\tau}\big)$.
# 3. With 1. and $s_+ \le 1$, $\bar s - s_+ \ge -(1 + \frac{1}{N-1})$, so
#
# $$\mathcal L \;\ge\; \log\Big(1 + (2N-2)\, e^{-(1 + \frac{1}{N-1})/\tau}\Big).$$
#
# Equality needs identical partners ($s_+ = 1$) and every negative at the same cosine $-1/(N-1)$: the N images'
# directions form a regular simplex, which takes a projection dimension of at least N − 1. With fewer dimensions
# the minimum is higher still. Partners pulled together and negatives spread apart are what Wang & Isola (2020)
# call alignment and uniformity on the hypersphere: with many negatives, a contrastive loss of this kind
# optimises both. The cell prints the floor for this profile and for N = 128, τ = 0.2.

# %%
def nt_xent_floor(n, tau):  # the bound above
    return math.log(1 + (2 * n - 2) * math.exp(-(1 + 1 / (n - 1)) / tau))

floor = nt_xent_floor(n, tau)
print(f"this profile, N = {n}, tau = {tau}: ln(2N - 1) = {math.log(2 * n - 1):.3f} at the start, floor {floor:.3f}")
print(f"N = 128, tau = 0.2: floor {nt_xent_floor(128, 0.2):.3f} nats")
print(f"the floor is reachable only with a projection dimension >= N - 1 = {n - 1}; "
      f"this model's is {config.model.proj_dim}")

# %% [markdown]
# The bound is attained: K points at the corners of a regular simplex (the unit vectors $e_k$ minus their mean),
# each view equal to its partner, give exactly the floor with the library's `nt_xent`.

# %%
k = 8
simplex = torch.eye(k) - 1 / k  # K directions, pairwise cosine -1/(K - 1)
print(f"pairwise cosine {F.cosine_similarity(simplex[0], simplex[1], dim=0).item():.4f} = -1/(K - 1) = {-1 / (k - 1):.4f}")
at_simplex = nt_xent(simplex, simplex.clone(), tau).item()
assert math.isclose(at_simplex, nt_xent_floor(k, tau), rel_tol=1e-4), (at_simplex, nt_xent_floor(k, tau))
print(f"K = {k}: nt_xent at the simplex {at_simplex:.5f}, the floor {nt_xent_floor(k, tau):.5f}")

# %% [markdown]
# ## Train (or load)
# If this run's checkpoint already exists with the same configuration, it is loaded; a partial run is resumed. Progress shows the loss and images per second.

# %%
from hybridlib.train import ensure_trained
run = ensure_trained(config, data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")

# %% [markdown]
# ## The loss curve
# The history logs the mean loss over each window of `log_every` steps, so its first point is at that step, not 0.
# The red dot is the untrained model's loss measured above (one batch at step 0), the dotted line ln(2N − 1), and
# the dashed line the floor, which no run can cross. The loss falls as views of the same image move together.
# The middle panel is what the loss is for: kNN accuracy on the 5 000 validation images (training images held out
# from training; the profile's `n_val`), every 100 steps. The right panel is the learning rate: warm-up, stable,
# then a linear decay over the last fifth (the recipe study's schedule).

# %%
fig = plots.plot_history(run.history, ["con_loss", "val_knn_acc", "lr"], title="contrastive")
ax = fig.axes[0]
ax.axhline(math.log(2 * n - 1), ls=":", c="gray", label="ln(2N - 1)")
ax.plot([0], [loss0], "o", c="tab:red", label="untrained, step 0")
ax.axhline(floor, ls="--", c="k", label="floor (simplex bound)")
ax.set_xlim(left=0)
ax.legend(fontsize=10);

# %% [markdown]
# ## What the representation retrieves
# For a few test images, the training images whose mean-pooled encoder features are closest in cosine similarity. Similar shapes should come back, not just similar brightness.

# %%
from hybridlib.evaluate import model_features
features = model_features(run.model, data)
queries, bank = data.test_images[:6], data.train_images[:5000]
sim = torch.nn.functional.normalize(features(queries), dim=1) @ torch.nn.functional.normalize(features(bank), dim=1).T
neighbours = bank[sim.topk(5, dim=1).indices]  # (6, 5, C, H, W)
plots.show_rows({f"query {i}": torch.cat([queries[i:i + 1], neighbours[i]]) for i in range(6)});

# %% [markdown]
# ## Exercises
# Each check cell says "not answered yet" until you replace the `None`, then "not quite" (with a hint) or
# "correct"; a number may be given rounded, to two significant digits or more (3.1 for 3.1416). The worked
# solutions are in [hybridlib/solutions.py](../hybridlib/solutions.py): open it after trying.
#
# **Exercise 1.** N = 2 images, temperature 0.5. Each view's projection equals its partner's, and the two images' projections are orthogonal. What is the NT-Xent loss? (Work it out by hand, then check.)

# %%
answer = None  # replace with your number
hl.exercises.check("nt-xent-orthogonal", answer)

# %% [markdown]
# **Exercise 2 (change the code): drop the self-mask.** Copy `nt_xent_from_scratch` into the cell below as
# `nt_xent_no_self_mask(z1, z2, tau)` and delete the line that masks the diagonal. Before you run it, predict:
# at initialisation, does the loss go up or down, by a lot or a little? And after training, what floor does the
# loss have now (what is each row's similarity with itself, and can the partner beat it)? Write the first answer
# down as `goes`: the cell records it before it runs your function. The check compares your function with the
# solution on a few inputs; the last lines print your loss on the untrained model's projections and set it beside
# your prediction once the check says correct.

# %%
goes = None  # your prediction first: does the untrained loss go "up" or "down" without the self-mask?
hl.predictions.record("no-self-mask-init", goes, config)
nt_xent_no_self_mask = None  # replace with your function (z1, z2, tau) -> loss
hl.exercises.check("nt-xent-no-self-mask", nt_xent_no_self_mask)
if nt_xent_no_self_mask is not None:
    unmasked = float(nt_xent_no_self_mask(z1, z2, tau))
    print(f"untrained model: {unmasked:.3f} without the self-mask, {loss0:.3f} with it")
    if hl.exercises.is_correct("nt-xent-no-self-mask", nt_xent_no_self_mask):  # an outcome from a checked function
        hl.predictions.reveal("no-self-mask-init", config, unmasked, float(loss0))

# %% [markdown]
# **Exercise 3 (change the code, and wait): which augmentation makes the task?** SimCLR's key finding was that the
# views make contrastive learning: no single augmentation is enough, and which ones are composed decides what the
# features learn. Here the views come from three augmentations (`random_views` in
# [hybridlib/augment.py](../hybridlib/augment.py)): a random resized crop, a horizontal flip, and a brightness and
# contrast jitter, each set by a field of `TrainConfig` ([hybridlib/config.py](../hybridlib/config.py)). Fill
# `switch_off` with, for each of the three, the settings that switch it off and leave the rest as it is. Before you
# run it, predict: without which one does the contrastive model lose the most (`costs_most`, recorded by the cell
# first)? Once your settings check out, the cell trains four short runs at a quarter of the budget, one with every
# augmentation and one without each (about 1.5 min each on the cpu profile, each kept under its own name), and
# prints each run's kNN accuracy on the validation images, held-out training images rather than the test set. One
# short run per setting: how large must a gap be before it means something (notebook 5, exercise 1)?

# %%
from hybridlib.validation import validate_model

costs_most = None  # your prediction first: "crop", "flip" or "jitter"
hl.predictions.record("augmentation-off", costs_most, config)
switch_off = None  # replace: {"crop": {...}, "flip": {...}, "jitter": {...}}, the TrainConfig settings that switch each off
hl.exercises.check("augmentations-off", switch_off)
if hl.exercises.is_correct("augmentations-off", switch_off):  # then train, and show the outcome
    if not len(data.val_images):
        print(f"the {config.profile} profile holds out no validation images (n_val = 0): run this exercise on the cpu profile")
    else:
        short = config.with_train(steps=config.train.steps // 4)  # a quarter of the budget: four runs in minutes
        knn = {}
        for name, settings in {"every augmentation": {}, **switch_off}.items():
            short_run = ensure_trained(short.with_train(**settings), data)
            knn[name] = validate_model(short_run.model, short_run.config, data)["val_knn_acc"]
            label = name if not settings else f"without {name}"
            se = (knn[name] * (1 - knn[name]) / len(data.val_images)) ** 0.5  # binomial: which images, not which run
            print(f"{label:>18s}: kNN accuracy {knn[name]:.3f} ± {se:.3f} on {len(data.val_images)} validation images")
        hl.predictions.reveal("augmentation-off", config, knn)

# %% [markdown]
# ## Conclusion
# **What we saw.** NT-Xent in ten lines, equal to the library's; its value at initialisation, near ln(2N − 1) and
# why not on it; its floor, which is not 0, and the configuration that reaches it; and a training run that moves
# from the first towards the second. This run's numbers (the last logged value is a mean over training batches):

# %%
final = run.history[-1]["con_loss"]
print(f"contrastive loss: {loss0:.3f} untrained (ln(2N - 1) = {math.log(2 * n - 1):.3f}), "
      f"{final:.3f} at step {run.history[-1]['step']:.0f}, floor {floor:.3f}")
print(f"the run covered {(loss0 - final) / (loss0 - floor):.0%} of the way from its start to the floor")

# %% [markdown]
# **What it means.** The loss only asks the two views of an image to be closer to each other than to the other
# 2N − 2 views in the batch; whatever tells the views apart from the negatives is enough, and nothing asks the
# features to describe the whole image. Distance to the floor is not a grade: the augmentations keep the views
# different, and with a projection dimension below N − 1 the floor cannot be reached at all. What the features are
# worth is measured on other tasks (the retrievals above, the probes of notebook 5).
#
# **Against the paper.** The paper starts from contrastive features being the more discriminative ones. Here they
# are, narrowly: in the committed cpu run (seed 0, 1000 steps) this model's linear probe, 0.833, is above the
# generative model's, 0.827, and above a probe on the raw pixels, 0.817 (notebook 5); over three seeds 0.834 ± 0.002
# against 0.823 ± 0.004, which claim (a) counts as held. It also leads on kNN accuracy (0.809 against 0.784): its
# features cluster by class. With the training recipe from before the recipe study (AdamW, one learning rate for
# every objective), the same budget gave 0.798, level with the generative model and below raw pixels: at this scale
# how good self-supervised features look depends on the recipe as much as on the objective. A thousand steps of 128
# small images is still a tiny budget for contrastive learning, which SimCLR trains for hundreds of epochs with
# batches of thousands.
#
# **What to try next.** Change the temperature (`TEMPERATURE = 0.5` in the parameters cell) and compare
# `nt_xent_floor(n, 0.5)` with this run's; a larger batch raises ln(2N − 1) and gives more negatives. Notebook 3
# trains the same network with the generative loss alone, notebook 4 with both.

# %% [markdown]
# ## Discussion questions
# 1. The floor needs the N images' projections at the corners of a regular simplex, which takes a dimension of at
#    least N − 1. What does the loss ask of the projections when there are fewer dimensions, and why need a lower
#    loss not mean better features for a probe?
# 2. A smaller τ lowers the floor and sharpens the softmax over the negatives. Which negatives then dominate the
#    gradient, and what happens when one of them is an image of the same class?
# 3. NT-Xent never sees a label and counts same-class images as negatives, yet the features cluster by class (kNN
#    0.809 against the generative model's 0.784). What in the data, the augmentations or the encoder could explain it?
# 4. With the earlier recipe the same budget gave a probe of 0.798 instead of 0.833. What can one comparison of
#    objectives, at one budget and with one recipe, show about the objectives themselves?
# 5. BYOL (Grill et al., 2020) drops the negatives and still does not collapse to one point. Which part of NT-Xent
#    prevents collapse here, and what must take its place when there are no negatives?

# %% [markdown]
# ## References
# - T. Chen, S. Kornblith, M. Norouzi, G. Hinton (2020). A Simple Framework for Contrastive Learning of Visual
#   Representations (SimCLR). ICML. [arXiv:2002.05709](https://arxiv.org/abs/2002.05709)
# - M. Chen, A. Radford, R. Child, J. Wu, H. Jun, D. Luan, I. Sutskever (2020). Generative Pretraining from Pixels
#   (iGPT). ICML. [PMLR 119](https://proceedings.mlr.press/v119/chen20s.html)
# - S. Kim, S. Kim, J. Lee (2021). Hybrid Generative-Contrastive Representation Learning.
#   [arXiv:2106.06162](https://arxiv.org/abs/2106.06162)
# - E. Nalisnick, A. Matsukawa, Y. W. Teh, D. Gorur, B. Lakshminarayanan (2019). Do Deep Generative Models Know
#   What They Don't Know? ICLR. [arXiv:1810.09136](https://arxiv.org/abs/1810.09136)
# - C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger (2017). On Calibration of Modern Neural Networks. ICML.
#   [arXiv:1706.04599](https://arxiv.org/abs/1706.04599)
# - D. Hendrycks, T. Dietterich (2019). Benchmarking Neural Network Robustness to Common Corruptions and
#   Perturbations. ICLR. [arXiv:1903.12261](https://arxiv.org/abs/1903.12261)
# - J.-B. Grill, F. Strub, F. Altché, C. Tallec, P. H. Richemond, E. Buchatskaya, C. Doersch, B. Á. Pires, Z. D. Guo,
#   M. G. Azar, B. Piot, K. Kavukcuoglu, R. Munos, M. Valko (2020). Bootstrap Your Own Latent: A New Approach to
#   Self-Supervised Learning (BYOL). NeurIPS. [arXiv:2006.07733](https://arxiv.org/abs/2006.07733)
# - Z. Huang, X. Jin, C. Lu, Q. Hou, M.-M. Cheng, D. Fu, X. Shen, J. Feng (2023). Contrastive Masked Autoencoders are
#   Stronger Vision Learners (CMAE). IEEE TPAMI. [arXiv:2207.13532](https://arxiv.org/abs/2207.13532)
# - T. Wang, P. Isola (2020). Understanding Contrastive Representation Learning through Alignment and
#   Uniformity on the Hypersphere. ICML. [arXiv:2005.10242](https://arxiv.org/abs/2005.10242)
