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
# # 3. Generative only (iGPT-style next-token prediction)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/03_generative.ipynb)
#
# **Learning goals**
#
# - train the same transformer to predict each next token, an exact likelihood of the image;
# - read the loss in bits per dimension, and know what a model that knows nothing scores;
# - sample images and complete half-images with the trained model.
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

config, data = hl.setup("generative", PROFILE, SEED, steps=STEPS, **OVERRIDES)

# %% [markdown]
# ## Bits per dimension
# The model factorises $p(x) = \prod_t p(x_t \mid x_{<t})$ over tokens. Bits per dimension is
# $-\log_2 p(x)$ divided by the number of pixel values (pixels x channels), so it does not depend on how
# pixels are grouped into tokens. A model that spreads its probability uniformly over the vocabulary
# scores exactly $\log_2(\text{levels})$; a freshly initialised model is close to that.
#
# **The output head** turns the decoder's state $s$ into $p(x_t \mid x_{<t})$. With the cpu profile a token is a
# 2x2 patch of 8-level pixels, 4096 values. The `joint` head scores all of them with one softmax (as iGPT does);
# the `pixels` head predicts the patch's four pixels one after another, each an 8-way softmax given $s$ and the
# pixels already seen, $p(\text{token}) = \prod_k p(x_k \mid s, x_{<k})$: the same exact likelihood (the chain rule
# inside the token) with 32 outputs instead of 4096. `config.model.head` chooses; `hybridlib/heads.py` has both.

# %%
# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import bits_per_dim
torch.manual_seed(SEED)
fresh = hl.HybridTransformer(config.model)
with torch.no_grad():
    nll, _, _ = fresh(data.train_tokens[:64])  # (64, T) nats of each token given the ones before it
    bpd0 = bits_per_dim(nll.mean(), config.data.dims_per_token).item()
uniform = math.log2(config.data.levels) if config.data.channels == 1 else math.log2(config.data.palette_size) / 3
print("untrained model within 2 % of the uniform predictor's bits/dim:", abs(bpd0 - uniform) / uniform < 0.02)

# %% [markdown]
# ## Train (or load)

# %%
from hybridlib.train import ensure_trained
run = ensure_trained(config, data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")

# %% [markdown]
# ## The curve in bits/dim
# The dashed line is the uniform predictor.

# %%
fig = plots.plot_history(run.history, ["bits_per_dim"], title="generative")
fig.axes[0].axhline(uniform, ls="--", c="gray");

# %% [markdown]
# ## Samples
# Images drawn token by token from the model (temperature 1). At laptop scale they are blurry but should have the data's shapes.

# %%
samples = run.model.generate(16, temperature=1.0, generator=torch.Generator().manual_seed(SEED))
plots.show_images(data.tokenizer.decode(samples.cpu()), nrow=8);

# %% [markdown]
# ## Completions
# The top half of each test image is given; the model samples the bottom half.

# %%
half = config.data.seq_len // 2 - (config.data.seq_len // 2) % (config.data.image_size // config.data.patch_size)
given = data.test_tokens[:8]
completed = run.model.complete(given, n_given=half, generator=torch.Generator().manual_seed(SEED))
plots.show_rows({"original": data.tokenizer.decode(given), "completed": data.tokenizer.decode(completed.cpu())});

# %% [markdown]
# **Exercise.** A model gives the true 2x2-patch token probability 1/16 every time. How many bits per dimension is that?

# %%
answer = None  # replace with your number
hl.exercises.check("bits-per-dim", answer)
