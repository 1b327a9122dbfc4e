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
# # 3. Generative only (iGPT-style next-token prediction)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/hybridlib/hybridlib/blob/main/notebooks/03_generative.ipynb)
#
# **Learning goals**
#
# - train the same transformer to predict each next token, an exact likelihood of the image;
# - read the loss in bits per dimension, compute it by hand from the logits, and know what a model that knows nothing
#   scores;
# - see why the causal mask makes the likelihood exact, by changing the future and watching the past;
# - sample images and complete half-images with the trained model.
#
# **Running it.** The parameters cell below is what papermill and `make reproduce` set: `PROFILE` None means
# `$HYBRIDLIB_PROFILE`, else `auto` (by the hardware); `smoke` runs in seconds, `cpu` gives real results on a laptop,
# `gpu-small` is CIFAR-10 at 16x16 for a free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU. `STEPS` None is the
# profile's budget; fewer give a quick live run, kept apart from the full run. `OVERRIDES` takes any other setting of
# `hybridlib.get_config`, e.g. `{"head": "pixels"}`. On Colab the setup cell after it clones the repository, with the trained weights that ship with it, and
# `PROFILE` None means the `cpu` profile there, so models load instead of training (`PROFILE = "gpu-small"` on a GPU
# runtime trains CIFAR-10); elsewhere it does nothing of the kind (`make lab`).

# %% tags=["parameters"]
PROFILE, SEED, STEPS = None, 0, None
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

config, data = hl.setup("generative", PROFILE, SEED, steps=STEPS, **OVERRIDES)

# %% [markdown]
# ## Bits per dimension
# The model factorises $p(x) = \prod_t p(x_t \mid x_{<t})$ over tokens. Bits per dimension is
# $-\log_2 p(x)$ divided by the number of pixel values (pixels x channels), so it does not depend on how
# pixels are grouped into tokens. A model that spreads its probability uniformly over the vocabulary
# scores exactly $\log_2(\text{levels})$; a freshly initialised model is close to that.
#
# **Not comparable with published figures.** Bits/dim here is measured on images quantized to the profile's few
# grey levels (8 on the cpu profile) or to a 512-colour palette, while the literature's figures are for 256 levels
# per channel. A pixel value with L levels carries at most $\log_2 L$ bits (3 bits for 8 levels, 8 bits for 256):
# quantizing throws away the fine, noisy, hardest-to-predict part of each value, so these numbers are much lower
# than published ones without the model being any better. Compare bits/dim only at the same quantization.
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
# **From logits to bits/dim, by hand.** The decoder's state at position t has seen tokens 0 … t − 1 only; the
# joint head turns it into one logit per token value; a log-softmax gives log-probabilities, and the one of the true
# token, negated, is the nats that token costs. Divide by ln 2 for bits, and by the pixel values a token stands for
# (4 for a 2x2 patch of grey pixels) for bits per dimension. The library does the same in
# `HybridTransformer.next_token_nll` ([hybridlib/model.py](../hybridlib/model.py)) and `bits_per_dim`
# ([hybridlib/losses.py](../hybridlib/losses.py)); the cell checks both on the untrained model.

# %%
model = fresh if config.model.head == "joint" else hl.HybridTransformer(config.with_model(head="joint").model)
tokens = data.train_tokens[:64]
with torch.no_grad():
    s = model.decoder_hidden(model.forward_encoder(tokens))[:, :-1]  # (B, T, d): position t has seen tokens < t
    logits = model.head(s)  # (B, T, V): one score per value token t could take
    nats = -logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T): -ln p(x_t | x_<t)
    library_nats = model(tokens)[0]  # next_token_nll: (B, T) nats
bits_per_token = nats.mean() / math.log(2)  # nats -> bits
bpd = bits_per_token / config.data.dims_per_token  # bits per pixel value
torch.testing.assert_close(nats, library_nats)
torch.testing.assert_close(bpd, bits_per_dim(library_nats.mean(), config.data.dims_per_token))
print(f"{nats.mean():.3f} nats per token = {bits_per_token:.3f} bits per token = {bpd:.3f} bits/dim "
      f"(dims_per_token = {config.data.dims_per_token}); the library agrees")

# %% [markdown]
# ## The causal mask
# The likelihood is exact only if the prediction of token t uses nothing but the tokens before it. Attention lets
# every position read every other; the causal mask hides the future. In the T x T matrix of attention scores,
# entry (i, j) is set to −∞ for j > i, so after the softmax position i gives weight 0 to every later position.
# The model reads the start token followed by the image tokens, so position i, which predicts image token i, has
# seen the start token and image tokens 0 … i − 1. The mask for 5 positions (1 = hidden):

# %%
print(torch.ones(5, 5, dtype=torch.int).triu(1))

# %% [markdown]
# **Attention from scratch**, with and without the mask: scaled dot products, the mask, a softmax over the
# positions read, a weighted sum of their values.

# %%
def attention(q, k, v, causal=True):  # q, k, v: (B, heads, T, head size)
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, heads, T, T): how much position i reads j
    if causal:
        future = torch.ones(T, T, dtype=torch.bool).triu(1)  # j > i
        scores = scores.masked_fill(future, float("-inf"))  # weight exp(-inf) = 0 after the softmax
    return scores.softmax(dim=-1) @ v

# %% [markdown]
# `with_attention` copies a model and makes every block use a given attention in place of
# `CausalSelfAttention.forward` in [hybridlib/model.py](../hybridlib/model.py), which calls PyTorch's fused
# `scaled_dot_product_attention` with `is_causal=True`. With the mask the copy must give the library's outputs. The
# copies run in float64, so that even a tiny dependence shows: a change that has to pass through several blocks
# can fall below float32's precision. The cpu profile starts every block as the identity (`zero_init_proj`: the
# output projections are zero, so at initialisation attention adds nothing and nothing could move); the proof uses a
# copy of the untrained model whose attention projections are drawn at random instead.

# %%
import copy
import functools
import types

def with_attention(model, attend):  # a float64 copy of model whose blocks use attend(q, k, v)
    def forward(self, x):  # CausalSelfAttention.forward, with attend in place of the fused kernel
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)  # QK-norm, as the library (the identity where the profile has none)
        return self.proj(attend(q, k, v).transpose(1, 2).reshape(b, t, d))
    twin = copy.deepcopy(model).double()
    for block in [*twin.encoder, *twin.decoder]:
        block.attn.forward = types.MethodType(forward, block.attn)
    return twin

def predictions(model, tokens):  # (B, T+1, d) decoder states: position i predicts image token i
    with torch.no_grad():
        return model.decoder_hidden(model.forward_encoder(tokens))

untrained = copy.deepcopy(fresh)
if config.model.zero_init_proj:  # attention's output projections drawn, so that what attention reads can show
    torch.manual_seed(SEED)
    for block in [*untrained.encoder, *untrained.decoder]:
        torch.nn.init.normal_(block.attn.proj.weight, std=0.02)
library = copy.deepcopy(untrained).double()
masked = with_attention(untrained, attention)
unmasked = with_attention(untrained, functools.partial(attention, causal=False))
tokens = data.test_tokens[:2]
torch.testing.assert_close(predictions(masked, tokens), predictions(library, tokens))
print("masked attention from scratch = the library's")

# %% [markdown]
# **The proof.** Keep the first t + 1 tokens of two test images and change every later one. With the mask,
# nothing the model says about tokens 0 … t moves: not their nll, not even the prediction for token t + 1 (its
# position has seen tokens 0 … t only), although token t + 1 itself changed. The first prediction that moves is the
# one for token t + 2. Without the mask every position reads the changed tokens and everything moves: a model
# trained that way could read the very token it is asked to predict.

# %%
t = config.data.seq_len // 2
altered = tokens.clone()
altered[:, t + 1:] = (tokens[:, t + 1:] + 1) % config.data.vocab_size  # every token after position t changed

def what_moves(model):  # how far the nll of tokens 0..t moves, and the first position whose prediction moves
    before, after = predictions(model, tokens), predictions(model, altered)
    with torch.no_grad():
        nll_change = (model.head.nll(before[:, :-1], tokens) - model.head.nll(after[:, :-1], altered))[:, : t + 1]
    return nll_change.abs().max().item(), int(((before - after).abs().amax(dim=(0, 2)) > 0).nonzero()[0])

moves = {name: what_moves(m) for name, m in
         {"library": library, "from scratch, masked": masked, "from scratch, no mask": unmasked}.items()}
for name, (nll_change, first) in moves.items():
    print(f"{name:>21}: nll of tokens 0..{t} moves by {nll_change:.2g}; first prediction that moves: {first}")
assert moves["library"] == moves["from scratch, masked"] == (0.0, t + 2) and moves["from scratch, no mask"][1] == 0

# %% [markdown]
# ## Train (or load)

# %%
from hybridlib.train import ensure_trained
run = ensure_trained(config, data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")

# %% [markdown]
# ## The curve in bits/dim
# Measured on the training batches (clean images), and every 100 steps on the 5 000 held-out validation images
# (right). The dashed line is the uniform predictor. The two curves agreeing says the model has not begun to
# memorise its training images.

# %%
fig = plots.plot_history(run.history, ["bits_per_dim", "val_bits_per_dim"], title="generative")
fig.axes[0].axhline(uniform, ls="--", c="gray");

# %% [markdown]
# ## Samples
# Images drawn token by token from the model (temperature 1). At laptop scale they are blurry but should have the data's shapes.

# %%
samples = run.model.generate(16, temperature=1.0, generator=torch.Generator().manual_seed(SEED))
plots.show_images(data.tokenizer.decode(samples.cpu()), nrow=8);

# %% [markdown]
# ## Samples during training
# At every checkpoint the training loop drew 8 samples from the model as it was then, each time from the same random
# numbers (`sample_snapshot` in [hybridlib/train.py](../hybridlib/train.py)): a column is one draw of the dice,
# decoded by the model at successive stages of training.

# %%
if run.samples:
    plots.show_rows({f"step {s}": data.tokenizer.decode(t) for s, t in sorted(run.samples.items())});
else:
    print("this run was trained before the training loop kept samples: train one (another STEPS) to see them")

# %% [markdown]
# ## Completions
# The top rows of each test image are given (above the red line); the model samples the rest, token by token.

# %%
tokens_per_row = config.data.image_size // config.data.patch_size
half = config.data.seq_len // 2 - (config.data.seq_len // 2) % tokens_per_row  # whole rows of tokens
given = data.test_tokens[:8]
completed = run.model.complete(given, n_given=half, generator=torch.Generator().manual_seed(SEED))
plots.completions(data.tokenizer.decode(given), data.tokenizer.decode(completed.cpu()),
                  prompt_rows=half // tokens_per_row * config.data.patch_size);

# %% [markdown]
# ## Exercises
# Each check cell says "not answered yet" until you replace the `None`, then "not quite" (with a hint) or
# "correct"; a number may be given rounded, to two significant digits or more (3.1 for 3.1416). The worked
# solutions are in [hybridlib/solutions.py](../hybridlib/solutions.py): open it after trying.
#
# **Exercise 1.** A model gives the true 2x2-patch token probability 1/16 every time. How many bits per dimension is that?

# %%
answer = None  # replace with your number
hl.exercises.check("bits-per-dim", answer)

# %% [markdown]
# **Exercise 2 (change the code): a mask off by one.** Write `leaky_attention(q, k, v)`, a copy of `attention`
# whose mask also lets each position see the next one (one character changes). Build a model with it,
# `with_attention(untrained, leaky_attention)`, and find its first prediction that moves (the second value
# `what_moves` returns). How many positions earlier than with the right mask (position t + 2) is it? Predict before
# you run, as `earlier_by` (the cell records it): is it one? The solution also says what training with such a mask
# would do to the bits/dim.

# %%
earlier_by = None  # your prediction first: "one" or "more than one"
hl.predictions.record("leak-per-mask", earlier_by, config)
leaky_attention = None  # replace with your function (q, k, v) -> output
earlier = None  # replace with the number of positions you measured
hl.exercises.check("leaky-attention", leaky_attention)
hl.exercises.check("mask-off-by-one", earlier, config)
if hl.exercises.is_correct("mask-off-by-one", earlier, config):  # the outcome, once your count is right
    hl.predictions.reveal("leak-per-mask", config, config)

# %% [markdown]
# ## Conclusion
# **What we saw.** Bits/dim computed by hand from the logits equals the library's; the causal mask, proved by
# changing the future and watching the past stay put; a model that starts at the uniform predictor's bits/dim and
# learns to spend fewer; samples and completions. This run's numbers:

# %%
final = run.history[-1]["bits_per_dim"]
print(f"bits/dim: uniform {uniform:.3f}, untrained {bpd0:.3f}, "
      f"after {run.history[-1]['step']:.0f} steps {final:.3f} (training batches)")
print(f"the trained model needs {final / uniform:.0%} of the bits of a uniform guess")

# %% [markdown]
# **What it means.** Bits/dim is an exact code length: a model at b bits/dim could compress these quantized
# images to b bits per pixel value. It does not depend on how pixels are grouped into tokens or on the head, so
# runs at the same quantization compare directly; it says nothing by itself about whether the encoder's features
# are good for recognising things, which notebook 5 measures. A likelihood is also not a reliable detector of
# unusual inputs (Nalisnick et al., 2019): notebook 5 tests that too.
#
# **Against the paper.** Generative features are meant to be the weaker ones for classification. Here they are,
# narrowly: in the committed cpu run (seed 0, 1000 steps) this model's linear probe, 0.827, is below the
# contrastive model's, 0.833 (over three seeds 0.823 against 0.834: claim (a) holds), though above raw pixels
# (0.817). Its features tell near-OOD images apart about as well as the contrastive model's (kNN-distance AUROC
# 0.893 against 0.897; over three seeds 0.901 against 0.891, inside the spread: claim (b) is undecided). What
# matches the literature is the likelihood's failure as an OOD score: notebook 5 shows constant images rated *more*
# likely than real ones.
#
# **What to try next.** Train with the pixel-by-pixel head (`OVERRIDES = {"head": "pixels"}`) and compare the
# curves; sample at temperature 0.8 instead of 1; give the completions fewer rows. Notebook 4 adds the contrastive
# loss to this one.

# %% [markdown]
# ## Discussion questions
# 1. Bits/dim is an exact code length, yet it says nothing by itself about whether the features are good for
#    recognition. On which parts of an image could a model spend most of its bits that a classifier does not need?
# 2. The joint head (4096 outputs) and the pixels head (32 outputs) give the same exact likelihood. Why might they
#    still reach different bits/dim in the same number of steps, and which would you expect to handle rare patches
#    better?
# 3. The model reads tokens in raster order, so the first rows are predicted from almost no context. Would another
#    order change the exact likelihood in principle, or only what the model learns in practice?
# 4. The representation is taken from the encoder, before the decoder blocks that predict the next token. Why might
#    the best features for classification lie inside a generative network rather than at its output?
# 5. MAE (He et al., 2022) reconstructs hidden patches from all the visible ones instead of predicting each token
#    from those before it. What does each objective offer that the other lacks, for features and for generation?

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
