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
# # 5. Evaluation: five axes, three objectives, two baselines
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/05_evaluation.ipynb)
#
# **Learning goals**
#
# - evaluate frozen representations: linear probe and kNN accuracy;
# - measure out-of-distribution detection (AUROC), robustness to corruptions and calibration (ECE);
# - compare bits/dim, and decide which of the paper's claims held in this run.
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
from hybridlib import plots

config, data = hl.setup("hybrid", PROFILE, SEED)

# %% [markdown]
# ## Evaluate everything
# One call per model: the linear probe (logistic regression on standardised features of the frozen encoder), kNN, OOD detection (near-OOD: scikit-learn's digits, the test images upside down, and MNIST and KMNIST where `make data` could download them; far-OOD: noise and constant images), 10 corruptions x 5 severities, ECE, and test bits/dim. The baselines are raw pixels and a randomly initialised encoder of the same shape.

# %%
from IPython.display import Markdown
from hybridlib.experiments import evaluate_all
from hybridlib.evaluate import SUMMARY_KEYS
from hybridlib.report import markdown_table, ood_markdown, write_summary
summary = evaluate_all(config, data)
report_dir = write_summary(summary)
print(f"wrote summary.json and summary.md under results/{config.profile}/")

# %% [markdown]
# ## The table
# Accuracies and AUROC are fractions in [0, 1]; ECE and bits/dim: lower is better.

# %%
Markdown(markdown_table(summary["models"]))

# %% [markdown]
# ## Side by side

# %%
plots.compare_bars(summary["models"], list(SUMMARY_KEYS));

# %% [markdown]
# ## Out of distribution
# Two scores, fixed before looking at any result, each its own row: the **kNN distance** in feature space (every model; the claims use it) and the **likelihood** (bits/dim of the image, for the two models whose decoder was trained). AUROC per OOD set: 0.5 is chance, 1 is perfect separation, below 0.5 the score ranks OOD images as *more* typical than test images. Left of the white line the **near-OOD** sets (other digit-like images, the test images upside down): these are hard and the claims average over them. Right of it the **far-OOD** sets (noise, constant images), which any feature separates.

# %%
plots.ood_heatmap(summary["models"]);

# %% [markdown]
# ## Robustness to corruptions
# The probe is trained on clean features and tested on corrupted images; severity 0 is the clean test set.

# %%
plots.corruption_curves(summary["models"]);

# %% [markdown]
# ## Calibration
# A calibrated probe's bars follow the diagonal.

# %%
plots.reliability_diagrams(summary["models"]);

# %% [markdown]
# ## Bits per dimension
# Only the two models whose decoder was trained have one (the contrastive model's decoder never learns: its bits/dim would only say what an untrained decoder scores, about log2 of the levels).

# %%
for name in ("generative", "hybrid"):
    print(f"{name:12s} test bits/dim {summary['models'][name]['test_bits_per_dim']:.4f}")

# %% [markdown]
# ## Verdict
# The paper's claims, judged on this run's numbers (one seed; `make seeds` gives the spread over three seeds, and a gap smaller than that spread is no evidence either way).

# %%
from hybridlib.claims import claim_lines
print("\n".join(claim_lines(summary["claims"])))

# %% [markdown]
# Each model's mean OOD AUROC by score, near and far: the likelihood is not always the better detector, and on far-OOD sets such as constant images it can fail outright (Nalisnick et al., 2019).

# %%
Markdown(ood_markdown(summary["models"]))

# %% [markdown]
# **Exercise.** Which model (of all five, baselines included) is the most robust to corruptions in this run? Read it off the table or the figure, then check.

# %%
answer = None  # a model name, e.g. "hybrid"
most_robust = max(summary["models"], key=lambda m: summary["models"][m]["corruption_acc_mean"])
hl.exercises.check_choice(answer, most_robust, "the corruption acc mean column")
