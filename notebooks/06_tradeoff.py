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
# # 6. The trade-off: sweeping λ from generative to contrastive
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/06_tradeoff.ipynb)
#
# **Learning goals**
#
# - see how discrimination, OOD detection and bits/dim move as the contrastive weight λ grows;
# - find out whether some λ gets the best of both at this scale (the paper's picture, argued in words).
#
# **Running it.** The parameters cell below is what papermill and `make reproduce` set: `PROFILE` None means
# `$HYBRIDLIB_PROFILE`, else `auto` (by the hardware); `smoke` runs in seconds, `cpu` gives real results on a laptop,
# `gpu-small` is CIFAR-10 at 16x16 for a free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU. The setup cell after
# it installs the library on Colab (Runtime > Change runtime type > GPU picks a GPU profile) and does nothing of the
# kind elsewhere (`make lab`).

# %% tags=["parameters"]
PROFILE, SEED = None, 0

# %% [markdown]
# **Setup**: the configuration, resolved once, and the data.

# %%
# %matplotlib inline
import subprocess, sys  # on Colab: install the library first (Runtime > Change runtime type > GPU picks a GPU profile)
if "google.colab" in sys.modules and subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/hybridlib/hybridlib"]).returncode:
    raise SystemExit("could not install hybridlib (from https://github.com/hybridlib/hybridlib); upload a copy of the repository to Colab, run `!pip install ./hybridlib`, then rerun this cell")
import hybridlib as hl

config, data = hl.setup("hybrid", PROFILE, SEED)

# %% [markdown]
# ## Sweep
# Each run has the same architecture, data and number of steps; only λ differs.

# %%
import math

from hybridlib.experiments import lambda_sweep
rows = lambda_sweep(config, lams=(0.1, 0.3, 1.0, 3.0))
generative_bits = rows[0]["test_bits_per_dim"]
for r in rows:
    bits = "–" if math.isinf(r["lam"]) else \
        f"{r['test_bits_per_dim']:.3f} ({100 * (r['test_bits_per_dim'] / generative_bits - 1):+.1f} % vs generative-only)"
    print(f"λ={r['lam']:<5g} probe {r['linear_probe_acc']:.3f}  kNN {r['knn_acc']:.3f}  near-OOD {r['ood_auroc_near']:.3f} "
          f"corruption {r['corruption_acc_mean']:.3f}  bits/dim {bits}")

# %% [markdown]
# ## The picture
# Left of the axis is generative-only (λ = 0, drawn at a quarter of the smallest λ), right is contrastive-only (λ = ∞, drawn at four times the largest). The contrastive-only bits/dim is left out: its decoder is never trained.

# %%
from hybridlib.report import tradeoff_figure
tradeoff_figure(rows, config.profile);  # also saved as results/<profile>/figures/tradeoff.png

# %% [markdown]
# **Exercise.** At which λ is the linear probe best in this sweep? (Write `math.inf` for contrastive-only.) Then ask yourself: is there a λ that beats both endpoints on both the probe and OOD detection?

# %%
answer = None  # a number from the sweep
best_lam = max(rows, key=lambda r: r["linear_probe_acc"])["lam"]
hl.exercises.check_choice(answer, best_lam, "the linear_probe_acc column of the printed table")
