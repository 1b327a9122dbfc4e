# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# - write down NT-Xent and know its value at initialisation and its minimum;
# - train the encoder with it alone (the decoder is never used);
# - read the loss curve and look at what the representation retrieves.
#
# **Running it.** The parameters cell below is what papermill and `make reproduce` set: `PROFILE` None means
# `$HYBRIDLIB_PROFILE`, else `auto` (by the hardware); `smoke` runs in seconds, `cpu` gives real results on a laptop,
# `gpu-small` is CIFAR-10 at 16x16 for a free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU. `STEPS` None is the
# profile's budget; fewer give a quick live run, kept apart from the full run. `OVERRIDES` takes any other setting of
# `hybridlib.get_config`, e.g. `{"lam": 0.3, "temperature": 0.5}`. The setup cell after it installs the library on
# Colab (Runtime > Change runtime type > GPU picks a GPU profile) and does nothing of the kind elsewhere (`make lab`).

# %% tags=["parameters"]
PROFILE, SEED, STEPS, OVERRIDES = None, 0, None, {}

# %% [markdown]
# **Setup**: the configuration, resolved once, and the data.

# %%
# %matplotlib inline
import subprocess, sys  # on Colab: install the library first (Runtime > Change runtime type > GPU picks a GPU profile)
if "google.colab" in sys.modules and subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/hybridlib/hybridlib"]).returncode:
    raise SystemExit("could not install hybridlib (from https://github.com/hybridlib/hybridlib); upload a copy of the repository to Colab, run `!pip install ./hybridlib`, then rerun this cell")
import hybridlib as hl
import torch
from hybridlib import plots

config, data = hl.setup("contrastive", PROFILE, SEED, steps=STEPS, **OVERRIDES)

# %% [markdown]
# ## The loss
# For a batch of N images, two views give 2N projections $z$. For a view $i$ with partner $j$:
#
# $$\ell_i = -\log \frac{\exp(\cos(z_i, z_j)/\tau)}{\sum_{k \ne i} \exp(\cos(z_i, z_k)/\tau)}$$
#
# and the loss is the mean over all 2N. At initialisation the projections are unrelated, every one of the
# $2N-1$ candidates is equally likely, and the loss is close to $\ln(2N-1)$. Its minimum approaches 0 when
# partners coincide and everything else is far apart.

# %%
# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import nt_xent
n = config.train.batch_size
z1, z2 = torch.randn(n, 512), torch.randn(n, 512)
loss0 = nt_xent(z1, z2, temperature=1.0).item()
print("random projections: loss within 2 % of ln(2N - 1):", abs(loss0 - math.log(2 * n - 1)) / math.log(2 * n - 1) < 0.02)

# %% [markdown]
# ## Train (or load)
# If this run's checkpoint already exists with the same configuration, it is loaded; a partial run is resumed. Progress shows the loss and images per second.

# %%
from hybridlib.train import ensure_trained
run = ensure_trained(config, data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")

# %% [markdown]
# ## The loss curve
# It starts near ln(2N-1) and falls as views of the same image move together.

# %%
print(f"ln(2N - 1) = {math.log(2 * config.train.batch_size - 1):.2f}")
plots.plot_history(run.history, ["con_loss", "lr"], title="contrastive");

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
# **Exercise.** N = 2 images, temperature 0.5. Each view's projection equals its partner's, and the two images' projections are orthogonal. What is the NT-Xent loss? (Work it out by hand, then check.)

# %%
answer = None  # replace with your number
hl.exercises.check("nt-xent-orthogonal", answer)
