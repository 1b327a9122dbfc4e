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
# # 4. Hybrid: both losses, one network
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/04_hybrid.ipynb)
#
# **Learning goals**
#
# - combine the two objectives, L = L_gen + λ·L_con, with one forward pass per view;
# - follow both terms during training;
# - check that the hybrid still generates.
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

config, data = hl.setup("hybrid", PROFILE, SEED, steps=STEPS, **OVERRIDES)

# %% [markdown]
# ## The loss
# Each view goes through the encoder once. Its mean-pooled representation feeds the projection head
# (NT-Xent between the two views) and its token sequence continues through the decoder (next-token
# likelihood of that view). Same architecture, data and steps as the single objectives: only the loss
# differs. The design (which blocks form the encoder, generative loss on the views, λ) is this project's;
# the paper's abstract does not fix it.

# %%
# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import Objective
from hybridlib.step import make_views, step_generator
torch.manual_seed(SEED)
objective = Objective(hl.HybridTransformer(config.model), config.train, config.data.dims_per_token)
idx = torch.arange(config.train.batch_size)
v1, v2 = make_views(data.train_images[idx], data.tokenizer, config.train, step_generator(SEED, 0, 0))
with torch.no_grad():
    terms = objective(data.train_tokens[idx], v1, v2)
print("hybrid loss = L_gen + lambda * L_con:",
      math.isclose(terms["loss"], terms["gen_nll"] + config.train.lam * terms["con_loss"], rel_tol=1e-5))

# %% [markdown]
# ## Train (or load)

# %%
from hybridlib.train import ensure_trained
run = ensure_trained(config, data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")

# %% [markdown]
# ## Both terms
# The contrastive term (left) and the generative term in bits/dim (right). Compare them with the curves of notebooks 2 and 3, loaded here when those runs exist.

# %%
plots.plot_history(run.history, ["con_loss", "bits_per_dim"], title="hybrid");

# %% [markdown]
# Side by side with the single objectives: the hybrid's bits/dim against the generative model's, and its contrastive loss against the contrastive model's (each figure appears when notebooks 2 and 3 ran with the same `STEPS` and `OVERRIDES`).

# %%
from hybridlib.paths import run_dir_for
from hybridlib.train import read_history
folders = {name: run_dir_for(config.with_train(objective=name))  # the same settings' runs
           for name in ("contrastive", "generative")}
histories = {name: read_history(folder) for name, folder in folders.items() if (folder / "history.csv").exists()}
histories["hybrid"] = run.history
if "generative" in histories:
    plots.compare_histories({k: v for k, v in histories.items() if k != "contrastive"}, "bits_per_dim")
if "contrastive" in histories:
    plots.compare_histories({k: v for k, v in histories.items() if k != "generative"}, "con_loss")

# %% [markdown]
# ## Samples from the hybrid

# %%
samples = run.model.generate(16, temperature=1.0, generator=torch.Generator().manual_seed(SEED))
plots.show_images(data.tokenizer.decode(samples.cpu()), nrow=8);

# %% [markdown]
# **Exercise.** At initialisation on the cpu profile (vocabulary 4096, batch N = 128), which λ makes the two loss terms equal?

# %%
answer = None  # replace with your number
hl.exercises.check("hybrid-lambda", answer)
