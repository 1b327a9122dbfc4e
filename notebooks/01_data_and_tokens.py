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
# `gpu-small` is CIFAR-10 at 16x16 for a free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU. On Colab the setup
# cell after it clones the repository, with the trained weights that ship with it, and `PROFILE` None means the
# `cpu` profile there, so models load instead of training (`PROFILE = "gpu-small"` on a GPU runtime trains
# CIFAR-10); elsewhere it does nothing of the kind (`make lab`).

# %% tags=["parameters"]
PROFILE, SEED = None, 0

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
# MAE (He et al., 2022) also cuts images into patches, but embeds each patch's pixels linearly instead of
# indexing a vocabulary of patch values.

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
# ## The model at a glance
# One causal transformer reads these tokens, and each loss attaches at its own place
# ([hybridlib/model.py](../hybridlib/model.py), [hybridlib/losses.py](../hybridlib/losses.py)). The first blocks
# are the **encoder**: their output, layer-normed and averaged over positions, is the **representation** every
# evaluation of notebook 5 reads, and through a small projection head it feeds the **contrastive** loss (NT-Xent,
# notebook 2), which compares two augmented views of each image. The remaining blocks are the **decoder**: from
# the same encoder output they predict each token from the ones before it, and the **generative** loss is that
# prediction's cross-entropy, reported in bits per dimension (notebook 3). The **hybrid** (notebook 4) trains on
# both at once, $L = L_\text{gen} + \lambda\, L_\text{con}$. The sequence starts with a learned start token, so
# the decoder predicts every image token, the first one included.
#
# ```mermaid
# flowchart LR
#     tokens["image tokens (B, T)"] --> embed["start token + token and position embeddings (B, T+1, d)"]
#     embed --> encoder["encoder blocks (causal attention)"]
#     encoder --> pool["LayerNorm, mean over positions"]
#     pool --> rep["representation (B, d): what the probes read"]
#     rep --> proj["projection head (B, p)"]
#     proj --> con["NT-Xent on two views: L_con"]
#     encoder --> decoder["decoder blocks (causal attention)"]
#     decoder --> lnf["LayerNorm"]
#     lnf --> head["head: p(next token)"]
#     head --> gen["next-token cross-entropy: L_gen (bits/dim)"]
#     con --> hybrid["hybrid: L = L_gen + λ L_con"]
#     gen --> hybrid
# ```
#
# The contrastive objective never runs the decoder; the generative objective never uses the projection head. Both
# shape the same encoder, which is why one representation can be compared across the three objectives.
#
# The same diagram drawn by the library (`architecture` in [hybridlib/plots.py](../hybridlib/plots.py)), for
# viewers that do not render Mermaid, Colab among them:

# %%
plots.architecture();

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
# ## Exercises
# Each check cell says "not answered yet" until you replace the `None`s, then "not quite" (with a hint) or
# "correct"; a number may be given rounded, to two significant digits or more (3.1 for 3.1416). The worked
# solutions are in [hybridlib/solutions.py](../hybridlib/solutions.py): open it after trying.
#
# **Exercise 1.** How many distinct tokens are there with 4 grey levels and 3x3-pixel patches?

# %%
answer = None  # replace with your number
hl.exercises.check("tokens-vocab", answer)

# %% [markdown]
# **Exercise 2 (change the code): one pixel per token.** iGPT's tokens are single pixels. Make a tokenizer with
# 1x1 patches and the same grey levels, `GrayTokenizer(levels, patch_size)` from
# [hybridlib/tokenizer.py](../hybridlib/tokenizer.py), encode `images` (the 8 images above) with it, and read off
# the sequence length (tokens per image) and the vocabulary. Then: how many times more does one attention layer
# cost with these tokens than with this profile's? Attention scores every pair of positions; leave out the start
# token. Before you run anything, predict which of the three grows and which shrinks, and write down which one
# shrinks as `shrinks`: the cell records it (in `results/<profile>/predictions.json`) before it checks anything, and
# sets it beside the outcome once your numbers are right. (On the GPU profiles a token is one palette colour, already
# one pixel: the sequence stays, and the ratio is 1.)

# %%
from hybridlib.tokenizer import GrayTokenizer
shrinks = None  # your prediction first: "sequence length", "vocabulary", "attention cost" or "none"
hl.predictions.record("one-by-one-shrinks", shrinks, config)
tokenizer_1x1 = None  # replace: a GrayTokenizer with 1x1 patches
seq_len, vocab, attention_ratio = None, None, None  # replace: read them off tokenizer_1x1 and the tokens it gives
hl.exercises.check("one-by-one-patches", (seq_len, vocab, attention_ratio), config)
if hl.exercises.is_correct("one-by-one-patches", (seq_len, vocab, attention_ratio), config):  # from checked numbers
    hl.predictions.reveal("one-by-one-shrinks", config, config)

# %% [markdown]
# ## Conclusion
# **What we saw.** An image becomes a short sequence of integers and comes back from it exactly (up to the grey
# levels it was rounded to), and contrastive learning will compare two random views of each image. The numbers of
# this run:

# %%
import math
d = config.data
most_bits = math.log2(d.levels) if d.channels == 1 else math.log2(d.palette_size) / d.channels
print(f"{d.seq_len} tokens per image from a vocabulary of {d.vocab_size}; one token stands for "
      f"{d.dims_per_token} pixel values")
print(f"one pixel value carries at most {most_bits:.2f} bits here (8 bits in the 256-level images of the literature)")

# %% [markdown]
# **What it means.** The token is a design choice that trades sequence length against vocabulary: larger
# patches give fewer positions to attend over (attention grows with the square of the length) but a softmax over
# many more values. The likelihoods of notebooks 3 and 4 are exact, but for the *quantized* images: a pixel with
# few grey levels carries little information, which caps the bits per dimension a model can spend on it.
#
# **What to try next.** Change `levels` or `patch_size` in the setup cell, e.g.
# `hl.setup("hybrid", PROFILE, SEED, levels=16)`, and rerun:
# watch the vocabulary and the sequence length. Stronger augmentations (`crop_scale`, `jitter`) make the views
# harder to match: notebook 2 trains on them.

# %% [markdown]
# ## Discussion questions
# 1. Larger patches give shorter sequences but a larger vocabulary. As the patch grows, how often does training show
#    the model each token value, and what would that do to its predictions for patches it has rarely seen?
# 2. Quantizing to a few grey levels throws away the finest, noisiest part of each pixel value. Does that make
#    predicting the next token a better or a worse teacher of features, and is matching two views affected alike?
# 3. The augmentations decide what contrastive learning treats as "the same image". Which of them could remove what
#    tells two classes apart (a shirt from a T-shirt, say), and what would the representation then learn?
# 4. The generative loss scores token sequences, the contrastive loss compares augmented views. If the generative
#    loss were scored on the augmented views instead of the clean images, which images would its likelihood describe?

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
# - K. He, X. Chen, S. Xie, Y. Li, P. Dollár, R. Girshick (2022). Masked Autoencoders Are Scalable Vision Learners
#   (MAE). CVPR. [arXiv:2111.06377](https://arxiv.org/abs/2111.06377)
