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
# # 1. Data and tokens
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/01_data_and_tokens.ipynb)
#
# **Learning goals**
#
# - see the data set each profile uses and how an image becomes a sequence of tokens and back, exactly;
# - understand why a token is a 2x2 patch of grey levels on the cpu profile (sequence length vs vocabulary);
# - see the augmented views that contrastive learning compares.
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
import torch
from hybridlib import plots

config, data = hl.setup("hybrid", PROFILE, SEED)

# %% [markdown]
# ## The data
# A few training images per class. The `cpu` profile shrinks Fashion-MNIST from 28x28 to 14x14 (area averaging), so a 2-core laptop can train three transformers in minutes.

# %%
labels = data.train_labels
first_of_class = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(data.source.num_classes)])
plots.show_images(data.train_images[first_of_class], nrow=10, titles=data.source.classes);

# %% [markdown]
# ## Quantization and tokens
# Each pixel is rounded down to one of `levels` grey levels. A token is a `patch_size` x `patch_size` block of levels, so the vocabulary is `levels ** patch_size**2` and an image of side R is `(R / patch_size) ** 2` tokens. Fewer, richer tokens make attention cheaper; the likelihood stays exact because one token's distribution is the joint distribution of its pixels.

# %%
d = config.data
print(f"levels {d.levels}, patch {d.patch_size}x{d.patch_size}: vocabulary {d.vocab_size}, "
      f"{d.seq_len} tokens per image, {d.dims_per_token} pixel values per token")
plots.show_rows({"image": data.train_images[:8], "quantized": data.tokenizer.decode(data.train_tokens[:8])});

# %% [markdown]
# Tokens and images convert into each other without loss: decoding tokens gives the quantized image, and encoding that image gives the same tokens back. This cell's output is checked by the tests.

# %%
# NBVAL_CHECK_OUTPUT
tokens = data.train_tokens[:256]
print("tokens -> image -> tokens is exact:", torch.equal(data.tokenizer.encode(data.tokenizer.decode(tokens)), tokens))
print("every token is in the vocabulary:", bool(data.train_tokens.max() < config.data.vocab_size))

# %% [markdown]
# The first image as the model reads it: one number per token, in raster order.

# %%
side = config.data.image_size // config.data.patch_size
print(data.train_tokens[0].view(side, side))

# %% [markdown]
# ## Augmented views
# Contrastive learning sees two random views of each image (random resized crop, horizontal flip, brightness and contrast jitter) and learns to tell which views belong together. The views are made for the whole batch at once on the tensor.

# %%
from hybridlib.augment import random_views
g = torch.Generator().manual_seed(SEED)
kwargs = dict(crop_scale=config.train.crop_scale, hflip=config.train.hflip, jitter=config.train.jitter)
images = data.train_images[:8]
plots.show_rows({"image": images, "view 1": random_views(images, g, **kwargs), "view 2": random_views(images, g, **kwargs)});

# %% [markdown]
# **Exercise.** How many distinct tokens are there with 4 grey levels and 3x3-pixel patches?

# %%
answer = None  # replace with your number
hl.exercises.check("tokens-vocab", answer)
