"""Write notebooks/*.ipynb from the cell lists below (outputs empty; `make reproduce` fills them).

The notebooks are the tutorial; this script is how their text and code are kept reviewable.
Run `make notebooks` after editing it (or `python tools/build_notebooks.py NAME.ipynb` for one).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "notebooks"
# the repository's address lives in one place, pyproject.toml; badges and install cells come from it
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
COLAB = REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/") + "/blob/main/notebooks/{name}"

COLAB_INSTALL = f'''# On Colab: install hybridlib (Runtime > Change runtime type > GPU picks a GPU profile). Elsewhere: nothing.
import subprocess, sys
if "google.colab" in sys.modules:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{REPO_URL}"], capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit("could not install hybridlib from {REPO_URL} (" + (pip.stderr.strip().splitlines() or ["?"])[-1]
                         + "): upload a copy of the repository to Colab and run `!pip install ./hybridlib`, then rerun this cell")'''

PARAMETERS = '''PROFILE = None  # None: $HYBRIDLIB_PROFILE, else "auto" (by the hardware); or "smoke", "cpu", "gpu-small", "gpu"
SEED = 0'''
TRAINING_PARAMETERS = PARAMETERS + '''
STEPS = None  # None: the profile's budget; fewer for a quick live run (kept apart from the full run)
OVERRIDES = {}  # any other setting of hybridlib.get_config, e.g. {"lam": 0.3, "temperature": 0.5}'''


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def header(name: str, title: str, goals: list[str], training: bool = False) -> list:
    badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB.format(name=name)})"
    return [
        md(f"# {title}\n\n{badge}\n\n**Learning goals**\n\n" + "\n".join(f"- {g}" for g in goals)),
        md("On Colab the next cell installs the library; on your machine (`make lab`) it does nothing."),
        code(COLAB_INSTALL),
        md("**Parameters.** Papermill and `make reproduce` set the profile through `HYBRIDLIB_PROFILE`: "
           "`smoke` runs in seconds, `cpu` gives real results on a laptop, `gpu-small` is CIFAR-10 at 16x16 for a "
           "free Colab GPU, `gpu` CIFAR-10 at 32x32 for a large GPU; `auto` picks by the hardware."),
        code(TRAINING_PARAMETERS if training else PARAMETERS, "parameters"),
    ]


def setup(objective: str, training: bool = False) -> str:
    settings = "settings = {\"steps\": STEPS, **OVERRIDES}\n" if training else ""
    call = "seed=SEED, **settings" if training else "seed=SEED"
    return f'''%matplotlib inline
import torch
import hybridlib as hl
from hybridlib import plots
from hybridlib.data import prepare_data
from hybridlib.paths import run_dir_for

profile = hl.resolve_profile(PROFILE)
{settings}config = hl.get_config(profile, "{objective}", {call})
torch.manual_seed(SEED)
data = prepare_data(config.data)
out_dir = run_dir_for(config)
print(f"profile {{profile}}: {{config.data.dataset}} at {{config.data.image_size}}x{{config.data.image_size}}, "
      f"{{config.train.steps}} steps of batch {{config.train.batch_size}}")'''


def exercise(name: str, question: str) -> list:
    return [
        md(f"**Exercise.** {question}"),
        code(f'answer = None  # replace with your number\nhl.exercises.check("{name}", answer)'),
    ]


NOTEBOOKS = {}

NOTEBOOKS["01_data_and_tokens.ipynb"] = [
    *header("01_data_and_tokens.ipynb", "1. Data and tokens", [
        "see the data set each profile uses and how an image becomes a sequence of tokens and back, exactly;",
        "understand why a token is a 2x2 patch of grey levels on the cpu profile (sequence length vs vocabulary);",
        "see the augmented views that contrastive learning compares.",
    ]),
    md("**Setup**: one cell for the profile, the seed, the data and the paths."),
    code(setup("hybrid")),
    md("## The data\nA few training images per class. The `cpu` profile shrinks Fashion-MNIST from 28x28 to 14x14 "
       "(area averaging), so a 2-core laptop can train three transformers in minutes."),
    code('''labels = data.train_labels
first_of_class = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(data.source.num_classes)])
plots.show_images(data.train_images[first_of_class], nrow=10, titles=data.source.classes);'''),
    md("## Quantization and tokens\nEach pixel is rounded down to one of `levels` grey levels. A token is a "
       "`patch_size` x `patch_size` block of levels, so the vocabulary is `levels ** patch_size**2` and an image "
       "of side R is `(R / patch_size) ** 2` tokens. Fewer, richer tokens make attention cheaper; the likelihood "
       "stays exact because one token's distribution is the joint distribution of its pixels."),
    code('''d = config.data
print(f"levels {d.levels}, patch {d.patch_size}x{d.patch_size}: vocabulary {d.vocab_size}, "
      f"{d.seq_len} tokens per image, {d.dims_per_token} pixel values per token")
plots.show_rows({"image": data.train_images[:8], "quantized": data.tokenizer.decode(data.train_tokens[:8])});'''),
    md("Tokens and images convert into each other without loss: decoding tokens gives the quantized image, "
       "and encoding that image gives the same tokens back. This cell's output is checked by the tests."),
    code('''# NBVAL_CHECK_OUTPUT
tokens = data.train_tokens[:256]
print("tokens -> image -> tokens is exact:", torch.equal(data.tokenizer.encode(data.tokenizer.decode(tokens)), tokens))
print("every token is in the vocabulary:", bool(data.train_tokens.max() < config.data.vocab_size))'''),
    md("The first image as the model reads it: one number per token, in raster order."),
    code('''side = config.data.image_size // config.data.patch_size
print(data.train_tokens[0].view(side, side))'''),
    md("## Augmented views\nContrastive learning sees two random views of each image (random resized crop, "
       "horizontal flip, brightness and contrast jitter) and learns to tell which views belong together. "
       "The views are made for the whole batch at once on the tensor."),
    code('''from hybridlib.augment import random_views
g = torch.Generator().manual_seed(SEED)
kwargs = dict(crop_scale=config.train.crop_scale, hflip=config.train.hflip, jitter=config.train.jitter)
images = data.train_images[:8]
plots.show_rows({"image": images, "view 1": random_views(images, g, **kwargs), "view 2": random_views(images, g, **kwargs)});'''),
    *exercise("tokens-vocab", "How many distinct tokens are there with 4 grey levels and 3x3-pixel patches?"),
]

NOTEBOOKS["02_contrastive.ipynb"] = [
    *header("02_contrastive.ipynb", "2. Contrastive only (SimCLR's NT-Xent)", [
        "write down NT-Xent and know its value at initialisation and its minimum;",
        "train the encoder with it alone (the decoder is never used);",
        "read the loss curve and look at what the representation retrieves.",
    ], training=True),
    md("**Setup**."),
    code(setup("contrastive", training=True)),
    md(r"""## The loss
For a batch of N images, two views give 2N projections $z$. For a view $i$ with partner $j$:

$$\ell_i = -\log \frac{\exp(\cos(z_i, z_j)/\tau)}{\sum_{k \ne i} \exp(\cos(z_i, z_k)/\tau)}$$

and the loss is the mean over all 2N. At initialisation the projections are unrelated, every one of the
$2N-1$ candidates is equally likely, and the loss is close to $\ln(2N-1)$. Its minimum approaches 0 when
partners coincide and everything else is far apart."""),
    code('''# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import nt_xent
n = config.train.batch_size
z1, z2 = torch.randn(n, 512), torch.randn(n, 512)
loss0 = nt_xent(z1, z2, temperature=1.0).item()
print("random projections: loss within 2 % of ln(2N - 1):", abs(loss0 - math.log(2 * n - 1)) / math.log(2 * n - 1) < 0.02)'''),
    md("## Train (or load)\nIf this run's checkpoint already exists with the same configuration, it is loaded; "
       "a partial run is resumed. Progress shows the loss and images per second."),
    code('''from hybridlib.report import train_or_load
run = train_or_load(config, out_dir, data=data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")'''),
    md("## The loss curve\nIt starts near ln(2N-1) and falls as views of the same image move together."),
    code('''print(f"ln(2N - 1) = {math.log(2 * config.train.batch_size - 1):.2f}")
plots.plot_history(run.history, ["con_loss", "lr"], title="contrastive");'''),
    md("## What the representation retrieves\nFor a few test images, the training images whose mean-pooled encoder "
       "features are closest in cosine similarity. Similar shapes should come back, not just similar brightness."),
    code('''from hybridlib.evaluate import model_features
features = model_features(run.model, data)
queries, bank = data.test_images[:6], data.train_images[:5000]
sim = torch.nn.functional.normalize(features(queries), dim=1) @ torch.nn.functional.normalize(features(bank), dim=1).T
neighbours = bank[sim.topk(5, dim=1).indices]  # (6, 5, C, H, W)
plots.show_rows({f"query {i}": torch.cat([queries[i:i + 1], neighbours[i]]) for i in range(6)});'''),
    *exercise("nt-xent-orthogonal",
              "N = 2 images, temperature 0.5. Each view's projection equals its partner's, and the two images' "
              "projections are orthogonal. What is the NT-Xent loss? (Work it out by hand, then check.)"),
]

NOTEBOOKS["03_generative.ipynb"] = [
    *header("03_generative.ipynb", "3. Generative only (iGPT-style next-token prediction)", [
        "train the same transformer to predict each next token, an exact likelihood of the image;",
        "read the loss in bits per dimension, and know what a model that knows nothing scores;",
        "sample images and complete half-images with the trained model.",
    ], training=True),
    md("**Setup**."),
    code(setup("generative", training=True)),
    md(r"""## Bits per dimension
The model factorises $p(x) = \prod_t p(x_t \mid x_{<t})$ over tokens. Bits per dimension is
$-\log_2 p(x)$ divided by the number of pixel values (pixels x channels), so it does not depend on how
pixels are grouped into tokens. A model that spreads its probability uniformly over the vocabulary
scores exactly $\log_2(\text{levels})$; a freshly initialised model is close to that."""),
    code('''# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import bits_per_dim, token_nll
torch.manual_seed(SEED)
fresh = hl.HybridTransformer(config.model)
with torch.no_grad():
    logits, _, _ = fresh(data.train_tokens[:64])
    bpd0 = bits_per_dim(token_nll(logits, data.train_tokens[:64]), config.data.dims_per_token).item()
uniform = math.log2(config.data.levels) if config.data.channels == 1 else math.log2(config.data.palette_size) / 3
print("untrained model within 2 % of the uniform predictor's bits/dim:", abs(bpd0 - uniform) / uniform < 0.02)'''),
    md("## Train (or load)"),
    code('''from hybridlib.report import train_or_load
run = train_or_load(config, out_dir, data=data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")'''),
    md("## The curve in bits/dim\nThe dashed line is the uniform predictor."),
    code('''fig = plots.plot_history(run.history, ["bits_per_dim"], title="generative")
fig.axes[0].axhline(uniform, ls="--", c="gray");'''),
    md("## Samples\nImages drawn token by token from the model (temperature 1). At laptop scale they are "
       "blurry but should have the data's shapes."),
    code('''samples = run.model.generate(16, temperature=1.0, generator=torch.Generator().manual_seed(SEED))
plots.show_images(data.tokenizer.decode(samples.cpu()), nrow=8);'''),
    md("## Completions\nThe top half of each test image is given; the model samples the bottom half."),
    code('''half = config.data.seq_len // 2 - (config.data.seq_len // 2) % (config.data.image_size // config.data.patch_size)
given = data.test_tokens[:8]
completed = run.model.complete(given, n_given=half, generator=torch.Generator().manual_seed(SEED))
plots.show_rows({"original": data.tokenizer.decode(given), "completed": data.tokenizer.decode(completed.cpu())});'''),
    *exercise("bits-per-dim", "A model gives the true 2x2-patch token probability 1/16 every time. "
              "How many bits per dimension is that?"),
]

NOTEBOOKS["04_hybrid.ipynb"] = [
    *header("04_hybrid.ipynb", "4. Hybrid: both losses, one network", [
        "combine the two objectives, L = L_gen + λ·L_con, with one forward pass per view;",
        "follow both terms during training;",
        "check that the hybrid still generates.",
    ], training=True),
    md("**Setup**."),
    code(setup("hybrid", training=True)),
    md(r"""## The loss
Each view goes through the encoder once. Its mean-pooled representation feeds the projection head
(NT-Xent between the two views) and its token sequence continues through the decoder (next-token
likelihood of that view). Same architecture, data and steps as the single objectives: only the loss
differs. The design (which blocks form the encoder, generative loss on the views, λ) is this project's;
the paper's abstract does not fix it."""),
    code('''# NBVAL_CHECK_OUTPUT
import math
from hybridlib.losses import Objective
from hybridlib.train import make_views, step_generator
torch.manual_seed(SEED)
objective = Objective(hl.HybridTransformer(config.model), config.train, config.data.dims_per_token)
idx = torch.arange(config.train.batch_size)
v1, v2 = make_views(data.train_images[idx], data, config.train, step_generator(SEED, 0, 0))
with torch.no_grad():
    terms = objective(data.train_tokens[idx], v1, v2)
print("hybrid loss = L_gen + lambda * L_con:",
      math.isclose(terms["loss"], terms["gen_nll"] + config.train.lam * terms["con_loss"], rel_tol=1e-5))'''),
    md("## Train (or load)"),
    code('''from hybridlib.report import train_or_load
run = train_or_load(config, out_dir, data=data)
print(f"{run.step} steps, {run.wall_time_s / 60:.1f} min of training")'''),
    md("## Both terms\nThe contrastive term (left) and the generative term in bits/dim (right). Compare them with "
       "the curves of notebooks 2 and 3, loaded here when those runs exist."),
    code('''plots.plot_history(run.history, ["con_loss", "bits_per_dim"], title="hybrid");'''),
    md("Side by side with the single objectives: the hybrid's bits/dim against the generative model's, and its "
       "contrastive loss against the contrastive model's (each figure appears when notebooks 2 and 3 ran with the "
       "same `STEPS` and `OVERRIDES`)."),
    code('''from hybridlib.train import read_history
folders = {name: run_dir_for(hl.get_config(profile, name, seed=SEED, **settings))  # the same settings' runs
           for name in ("contrastive", "generative")}
histories = {name: read_history(folder) for name, folder in folders.items() if (folder / "history.csv").exists()}
histories["hybrid"] = run.history
if "generative" in histories:
    plots.compare_histories({k: v for k, v in histories.items() if k != "contrastive"}, "bits_per_dim")
if "contrastive" in histories:
    plots.compare_histories({k: v for k, v in histories.items() if k != "generative"}, "con_loss")'''),
    md("## Samples from the hybrid"),
    code('''samples = run.model.generate(16, temperature=1.0, generator=torch.Generator().manual_seed(SEED))
plots.show_images(data.tokenizer.decode(samples.cpu()), nrow=8);'''),
    *exercise("hybrid-lambda", "At initialisation on the cpu profile (vocabulary 4096, batch N = 128), "
              "which λ makes the two loss terms equal?"),
]

NOTEBOOKS["05_evaluation.ipynb"] = [
    *header("05_evaluation.ipynb", "5. Evaluation: five axes, three objectives, two baselines", [
        "evaluate frozen representations: linear probe and kNN accuracy;",
        "measure out-of-distribution detection (AUROC), robustness to corruptions and calibration (ECE);",
        "compare bits/dim, and decide which of the paper's claims held in this run.",
    ]),
    md("**Setup**. This notebook loads the checkpoints of notebooks 2-4; if one is missing (a notebook opened on "
       "its own, on Colab say) it trains it here first, saying roughly how long that takes: seconds on `smoke`, "
       "minutes on `cpu` or a small GPU."),
    code(setup("hybrid")),
    md("## Evaluate everything\nOne call per model: the probe (scikit-learn logistic regression on standardised "
       "features of frozen encoders), kNN, OOD sets (offline ones: digits, vertically flipped images, noise, "
       "constant images), 10 corruptions x 5 severities, ECE, and test bits/dim. The baselines are raw pixels "
       "and a randomly initialised encoder of the same shape."),
    code('''from hybridlib.report import evaluate_all, markdown_table, write_summary
from IPython.display import Markdown
summary = evaluate_all(profile, SEED, data=data)
report_dir = write_summary(summary)
print(f"wrote summary.json and summary.md under results/{profile}/")'''),
    md("## The table\nAccuracies and AUROC are fractions in [0, 1]; ECE and bits/dim: lower is better."),
    code('''Markdown(markdown_table(summary["models"]))'''),
    md("## Side by side"),
    code('''plots.compare_bars(summary["models"], ["linear_probe_acc", "knn_acc", "ood_auroc_mean", "corruption_acc_mean", "ece"]);'''),
    md("## Out of distribution\nAUROC of each model's best score (kNN distance in feature space, or the likelihood) "
       "per OOD set. 0.5 is chance, 1 is perfect separation."),
    code('''plots.ood_heatmap(summary["models"]);'''),
    md("## Robustness to corruptions\nThe probe is trained on clean features and tested on corrupted images; "
       "severity 0 is the clean test set."),
    code('''plots.corruption_curves(summary["models"]);'''),
    md("## Calibration\nA calibrated probe's bars follow the diagonal."),
    code('''plots.reliability_diagrams(summary["models"]);'''),
    md("## Bits per dimension\nThe contrastive model's decoder was never trained, so its number is there only as "
       "a reference for what an untrained decoder scores."),
    code('''for name in ("generative", "hybrid", "contrastive"):
    print(f"{name:12s} test bits/dim {summary['models'][name]['test_bits_per_dim']:.4f}")'''),
    md("## Verdict\nThe paper's claims, judged on this run's numbers (one seed; `make seeds` gives the spread "
       "over three seeds, and a gap smaller than that spread is no evidence either way)."),
    code('''for v in summary["verdicts"]:
    print(f"{'HELD    ' if v['held'] else 'NOT HELD'} {v['claim']}\\n         {v['evidence']}")'''),
    md("Each model's mean OOD AUROC by score type: the likelihood is not always the better detector."),
    code('''for name in ("contrastive", "generative", "hybrid"):
    print(name, {k: round(v, 3) for k, v in summary["models"][name]["ood_auroc_mean_by_score"].items()})'''),
    md("**Exercise.** Which model (of all five, baselines included) is the most robust to corruptions in this run? "
       "Read it off the table or the figure, then check."),
    code('''answer = None  # a model name, e.g. "hybrid"
most_robust = max(summary["models"], key=lambda m: summary["models"][m]["corruption_acc_mean"])
hl.exercises.check_choice(answer, most_robust, "the corruption acc mean column")'''),
]

NOTEBOOKS["06_tradeoff.ipynb"] = [
    *header("06_tradeoff.ipynb", "6. The trade-off: sweeping λ from generative to contrastive", [
        "see how discrimination, OOD detection and bits/dim move as the contrastive weight λ grows;",
        "find out whether some λ gets the best of both at this scale (the paper's picture, argued in words).",
    ]),
    md("**Setup**. λ = 0 is the generative-only model of notebook 3 and λ = ∞ the contrastive-only model of "
       "notebook 2; in between are hybrids (λ = 1 is notebook 4's). Missing runs are trained here: on the cpu "
       "profile about 6 minutes for each of the three new hybrids, plus a minute each to evaluate (`make tradeoff`); "
       "the three main runs are reused with their evaluation from `make reproduce`."),
    code(setup("hybrid")),
    md("## Sweep\nEach run has the same architecture, data and number of steps; only λ differs."),
    code('''import math

from hybridlib.report import lambda_sweep
rows = lambda_sweep(profile, lams=(0.1, 0.3, 1.0, 3.0), seed=SEED)
generative_bits = rows[0]["test_bits_per_dim"]
for r in rows:
    bits = "–" if math.isinf(r["lam"]) else \\
        f"{r['test_bits_per_dim']:.3f} ({100 * (r['test_bits_per_dim'] / generative_bits - 1):+.1f} % vs generative-only)"
    print(f"λ={r['lam']:<5g} probe {r['linear_probe_acc']:.3f}  kNN {r['knn_acc']:.3f}  OOD {r['ood_auroc_mean']:.3f} "
          f"({r['ood_best_score']})  corruption {r['corruption_acc_mean']:.3f}  bits/dim {bits}")'''),
    md("## The picture\nLeft of the axis is generative-only (λ = 0, drawn at a quarter of the smallest λ), right "
       "is contrastive-only (λ = ∞, drawn at four times the largest). The contrastive-only bits/dim is left out: "
       "its decoder is never trained."),
    code('''from hybridlib.report import tradeoff_figure
tradeoff_figure(rows, profile);  # also saved as results/<profile>/figures/tradeoff.png'''),
    md("**Exercise.** At which λ is the linear probe best in this sweep? (Write `math.inf` for contrastive-only.) "
       "Then ask yourself: is there a λ that beats both endpoints on both the probe and OOD detection?"),
    code('''answer = None  # a number from the sweep
best_lam = max(rows, key=lambda r: r["linear_probe_acc"])["lam"]
hl.exercises.check_choice(answer, best_lam, "the linear_probe_acc column of the printed table")'''),
]


def build(names: list[str], keep_outputs: bool = False) -> None:
    """Write the notebooks. ``keep_outputs``: carry each cell's outputs over from the notebook on disk (by
    cell id), for edits that cannot change any output (prose, the install and parameter cells); any
    other edit needs `make reproduce` to refill the outputs from a real run."""
    OUT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        for i, cell in enumerate(cells):  # stable ids: rebuilding an unchanged notebook changes nothing
            cell.id = f"{name.split('_')[0]}-{i:02d}"
        metadata = {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        }
        if keep_outputs and (OUT / name).exists():
            old = nbformat.read(OUT / name, as_version=4)
            metadata = old.metadata
            executed = {c.id: c for c in old.cells}
            for cell in cells:
                if cell.id in executed:
                    cell.metadata = executed[cell.id].metadata
                    if cell.cell_type == "code":
                        cell.outputs, cell.execution_count = executed[cell.id].outputs, executed[cell.id].execution_count
        nb = new_notebook(cells=cells, metadata=metadata)
        nbformat.validate(nb)
        nbformat.write(nb, OUT / name)
        print("wrote", OUT / name)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--keep-outputs", action="store_true",
                        help="keep each cell's outputs (only for edits that cannot change an output)")
    args = parser.parse_args()
    build(args.names, keep_outputs=args.keep_outputs)
