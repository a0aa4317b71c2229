"""Print the README's and the documentation's markdown tables (docs/evaluation.md,
docs/compression.md, docs/model-and-guide.md, docs/disentanglement.md) from
``benchmarks/results/*.json``.

    python benchmarks/tables.py                    # all tables
    python benchmarks/tables.py ood                # one: readme (the main README's summary),
                                                   # likelihood, semisupervised, compression,
                                                   # ood, anomaly_mnist, disentanglement,
                                                   # inference_gaps
    python benchmarks/tables.py --results DIR      # from another results folder

Each row says its epochs and the machine (and date) that measured it, so a table can be
pasted into those pages as it is. A file that is missing is said in one line.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any

import _results  # benchmarks/_results.py, beside this file

LIKELIHOOD_ROWS = {
    "normal": "standard prior",
    "mog": "mixture prior (500)",
    "vamp": "VampPrior (500)",
    "flow": "flow prior",
    "iaf": "IAF posterior",
    "iwae": "IWAE (K = 50)",
    "burda_vae": "VAE, IWAE's networks and schedule",
}


def _rows(folder: Path, name: str) -> list[dict[str, Any]] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else None


def _when(row: dict[str, Any]) -> str:
    return f"{row.get('machine', '?')}, {row.get('date', '?')}"


def _epochs(row: dict[str, Any]) -> str:
    epochs, best = row.get("epochs"), row.get("best_epoch")
    if epochs is None:
        return "-"
    return f"{epochs} (best {best})" if best is not None and best != epochs else str(epochs)


def likelihood(folder: Path) -> list[str]:
    rows = _rows(folder, "likelihood_bmnist")
    if rows is None:
        return [f"(no {folder / 'likelihood_bmnist.json'})"]
    order = list(LIKELIHOOD_ROWS)
    rows.sort(key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    out = [
        "| row | command: `python benchmarks/likelihood_bmnist.py ...` | epochs | test NLL "
        "(nats) | test ELBO | published NLL | machine |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = "" if r.get("n_test") == 10000 else f" (first {r.get('n_test')} images)"
        k = "" if r.get("num_samples") == 5000 else f" (K = {r.get('num_samples')})"
        flags = (
            r.get("command", "").partition("likelihood_bmnist.py ")[2] or f"--model {r['model']}"
        )
        out.append(
            f"| {LIKELIHOOD_ROWS.get(r['model'], r['model'])}{_gated(r)} | `{flags}` | "
            f"{_epochs(r)} | {r['test_nll']:.2f} ± {r['test_nll_se']:.2f}{n}{k} | "
            f"{r['test_elbo']:.2f} | {r.get('published_nll') or ''} | {_when(r)} |"
        )
    return out


def _gated(row: dict) -> str:
    """``, gated layers`` for a likelihood row whose hidden units are gated."""
    return ", gated layers" if row.get("activation") == "glu" else ""


def _draws(row: dict, word: str = "label draw") -> str:
    """``3 label draws``, ``1 label draw``: a semi-supervised row's runs."""
    runs = row.get("runs", 1)
    return f"{runs} {word}{'s' if runs != 1 else ''}"


def semisupervised(folder: Path) -> list[str]:
    rows = _rows(folder, "semisupervised_mnist")
    if rows is None:
        return [f"(no {folder / 'semisupervised_mnist.json'})"]
    rows.sort(key=lambda r: (str(r.get("recipe")), r.get("labels", 0)))
    out = [
        "| labels | recipe | M2 test accuracy | classifier on the labels alone | epochs "
        "(best per draw) | machine |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        sd = f" ± {100 * r['accuracy_sd']:.2f}" if r.get("runs", 1) > 1 else ""
        best = ", ".join(map(str, r.get("best_epochs", [])))
        out.append(
            f"| {r['labels']} | {r.get('recipe', '')} | {100 * r['accuracy_mean']:.2f} %{sd} "
            f"({_draws(r, 'draw')}) | {100 * r['baseline_accuracy']:.2f} % | "
            f"{r.get('epochs', '-')} ({best}) | {_when(r)} |"
        )
    return out


def compression(folder: Path) -> list[str]:
    rows = _rows(folder, "compression")
    if rows is None:
        return [f"(no {folder / 'compression.json'})"]
    out = [
        "| dataset | likelihood | prior | n | pyvae bits-back | negative ELBO | gzip | bz2 | "
        "lzma | PNG (per image / one image) | published BB-ANS | epochs | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = (r.get("published") or {}).get("bb_ans", "")
        out.append(
            f"| {r['dataset']} | {r.get('likelihood', '')} | {r.get('prior', 'normal')} | "
            f"{r['n']} | "
            f"**{r['bits_per_dim']:.4f}** | {r['neg_elbo_bits_per_dim']:.4f} | "
            f"{r['gzip']:.4f} | {r['bz2']:.4f} | {r['lzma']:.4f} | "
            f"{r.get('png', float('nan')):.4f} / {r.get('png_one_image', float('nan')):.4f} | "
            f"{published} | {_epochs(r)} | {_when(r)} |"
        )
    return out


OOD_SCORES = {
    "log_likelihood": "negative log-likelihood",
    "elbo": "negative ELBO",
    "likelihood_ratio": "likelihood ratio (Ren et al. 2019)",
    "complexity_png": "complexity, PNG (Serrà et al. 2020)",
    "complexity_zlib": "complexity, zlib",
    "complexity_bz2": "complexity, bz2",
    "complexity_png_fitted": "complexity, PNG, slope fitted on normal data",
    "typical_log_likelihood": "two-sided: distance of -log p(x) from the normal mean",
    "typical_complexity_png_fitted": "two-sided: distance of the fitted complexity from its mean",
    "nll_or_complexity_png": "two one-sided tests: max of the z-scores of -log p(x) and "
    "PNG complexity",
}


def _ood_name(score: str) -> str:
    if score.startswith("typicality_M"):
        return f"typicality test, batches of {score[len('typicality_M') :]} (Nalisnick et al. 2019)"
    return OOD_SCORES.get(score, score)


OOD_LIKELIHOODS = {
    "bernoulli": "Bernoulli, binarized",
    "beta_binomial": "beta-binomial, 8-bit",
    "discretized_logistic": "discretized logistic, 8-bit",
}


def _ood_likelihood(row: dict[str, Any]) -> str:
    return row.get("likelihood", "bernoulli")  # rows from before the option are Bernoulli


def ood(folder: Path) -> list[str]:
    rows = _rows(folder, "ood")
    if rows is None:
        return [f"(no {folder / 'ood.json'})"]
    pairs = sorted({(r["train"], r["test"]) for r in rows})
    order = [*OOD_SCORES, *sorted({r["score"] for r in rows} - set(OOD_SCORES))]
    kinds = sorted({_ood_likelihood(r) for r in rows}, key=[*OOD_LIKELIHOODS, ""].index)
    by = {(r["train"], r["test"], r["score"], _ood_likelihood(r)): r for r in rows}
    head = " | ".join(f"train {a}, test {b}: AUROC (AUPRC)" for a, b in pairs)
    out = [f"| score | likelihood | {head} |", "|---|---|" + "---|" * len(pairs)]
    for kind in kinds:
        for score in order:
            cells = [by.get((a, b, score, kind)) for a, b in pairs]
            if not any(cells):
                continue
            text = [f"{c['auroc']:.3f} ({c['auprc']:.3f})" if c else "" for c in cells]
            name = OOD_LIKELIHOODS.get(kind, kind)
            out.append(f"| {_ood_name(score)} | {name} | " + " | ".join(text) + " |")
    out.append("")
    for kind in kinds:
        mine = [r for r in rows if _ood_likelihood(r) == kind]
        r = mine[0]
        nll = "; ".join(
            f"trained on {a}: {x['mean_nll_in']:.1f} ({a}) against {x['mean_nll_out']:.1f} ({b})"
            for a, b in pairs
            for x in [next((m for m in mine if (m["train"], m["test"]) == (a, b)), None)]
            if x is not None
        )
        out.append(
            f"- {OOD_LIKELIHOODS.get(kind, kind)}: {r.get('epochs')} epochs on "
            f"{r.get('n_train')} training images, MLP {r.get('hidden')}, z_dim {r.get('z_dim')}, "
            f"{r.get('num_samples')} importance samples, background noise rate {r.get('rate')}, "
            f"{r.get('n_test')} test images per dataset; mean -log p(x) in nats per image "
            f"{nll}; {_when(r)}."
        )
    return out


def anomaly_mnist(folder: Path) -> list[str]:
    rows = _rows(folder, "anomaly_mnist")
    if rows is None:
        return [f"(no {folder / 'anomaly_mnist.json'})"]
    digits = sorted({r["digit"] for r in rows})
    names = {**OOD_SCORES, "reconstruction": "reconstruction probability"}
    names.update(latent="latent density", pca="PCA reconstruction error")
    scores = list(dict.fromkeys(r["score"] for r in rows))
    scores.sort(key=lambda s: list(names).index(s) if s in names else len(names))
    by = {(r["digit"], r["score"]): r["auroc"] for r in rows}
    out = [
        "| held-out digit | " + " | ".join(map(str, digits)) + " | mean |",
        "|---|" + "---|" * (len(digits) + 1),
    ]
    for score in scores:
        values = [by.get((d, score)) for d in digits]
        mean = sum(v for v in values if v is not None) / max(1, sum(v is not None for v in values))
        cells = " | ".join("" if v is None else f"{v:.3f}" for v in values)
        out.append(f"| {names.get(score, score)} | {cells} | **{mean:.3f}** |")
    r = rows[0]
    out.append("")
    out.append(
        f"{r.get('epochs')} epochs on {r.get('n_train')} training images per model, MLP "
        f"{r.get('hidden')}, z_dim {r.get('z_dim')}, {r.get('num_samples')} importance "
        f"samples, background noise rate {r.get('rate')}; {_when(r)}."
    )
    return out


DISENTANGLEMENT_ROWS = {
    "vae": "VAE",
    "beta_vae": "β-VAE (β = 4)",
    "beta_tcvae": "β-TCVAE (β = 6)",
    "factor_vae": "FactorVAE (γ = 6.4)",
}
#: The metrics of pyvae.disentanglement.scores, by their column titles.
DISENTANGLEMENT_METRICS = {
    "mig": "MIG",
    "dci_disentanglement": "DCI D",
    "dci_completeness": "DCI C",
    "dci_informativeness": "DCI I",
    "sap": "SAP",
    "factor_vae": "FactorVAE metric",
    "beta_vae": "β-VAE metric",
}


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.3f} ± {sd:.3f}"


def disentanglement(folder: Path) -> list[str]:
    """One line per model: each metric's mean ± sd over the seeds, the test ELBO, the
    epochs and the training minutes per run."""
    rows = _rows(folder, "disentanglement")
    if rows is None:
        return [f"(no {folder / 'disentanglement.json'})"]
    metrics = [m for m in DISENTANGLEMENT_METRICS if any(m in r for r in rows)]
    out = [
        "| model | seeds | "
        + " | ".join(DISENTANGLEMENT_METRICS[m] for m in metrics)
        + " | test ELBO (nats) | epochs | min per run | machine |",
        "|---" * (len(metrics) + 6) + "|",
    ]
    models = [m for m in DISENTANGLEMENT_ROWS if any(r["model"] == m for r in rows)]
    for model in models + sorted({r["model"] for r in rows} - set(DISENTANGLEMENT_ROWS)):
        mine = [r for r in rows if r["model"] == model]
        cells = [_mean_sd([r[m] for r in mine if m in r]) for m in metrics]
        minutes = sum(r["train_seconds"] for r in mine) / len(mine) / 60
        epochs = sorted({r["epochs"] for r in mine})
        out.append(
            f"| {DISENTANGLEMENT_ROWS.get(model, model)} | {len(mine)} | "
            + " | ".join(cells)
            + f" | {_mean_sd([r['test_elbo'] for r in mine])} | "
            f"{', '.join(map(str, epochs))} | {minutes:.1f} | {_when(mine[0])} |"
        )
    return out


def _plus_minus(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f} ± {row[key + '_se']:.2f}"


def inference_gaps(folder: Path) -> list[str]:
    rows = _rows(folder, "inference_gaps")
    if rows is None:
        return [f"(no {folder / 'inference_gaps.json'})"]
    out = [
        "| model | epochs | test images | log p(x) | ELBO, optimal q | ELBO, encoder's q | "
        "approximation gap | amortization gap | refined q (steps): ELBO | IS log p(x) | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r.get("epochs", 0)):
        pm = functools.partial(_plus_minus, r)
        out.append(
            f"| {r['model']} | {r['epochs']} | {r['n']} | {pm('log_likelihood')} | "
            f"{pm('elbo_optimal')} | {pm('elbo_amortized')} | **{pm('approximation_gap')}** | "
            f"**{pm('amortization_gap')}** | ({r['refine_steps']}) {pm('refined_elbo')} | "
            f"{pm('refined_log_likelihood')} | {_when(r)} |"
        )
    return out


def _finished(rows: list[dict[str, Any]] | None, **key: Any) -> dict[str, Any] | None:
    """The row of ``rows`` whose fields equal ``key``, if it is there."""
    found = [r for r in rows or [] if all(r.get(k) == v for k, v in key.items())]
    return found[0] if found else None


def _nll(row: dict[str, Any]) -> str:
    return f"{row['test_nll']:.2f} ± {row['test_nll_se']:.2f} nats"


def readme(folder: Path) -> list[str]:
    """The main README's summary: one line per reproduced figure, from the result files
    (a row not finished yet says so)."""
    out = [
        "| benchmark | pyvae | published | measured on |",
        "|---|---|---|---|",
    ]
    likelihood_rows = _rows(folder, "likelihood_bmnist")
    nll = _finished(likelihood_rows, model="normal")
    out.append(
        "| binarized MNIST, test NLL (K = 5000), standard prior | "
        + (
            f"{_nll(nll)} ({nll['epochs']} epochs, best {nll.get('best_epoch')}) | "
            f"88.6-89.9; pythae 89.78 | {_when(nll)} |"
            if nll
            else "not run yet | 88.6-89.9 | |"
        )
    )
    for model, name, published in (
        (
            "mog",
            "mixture prior (500 components)",
            "between the standard prior and the VampPrior (85.57)",
        ),
        ("vamp", "VampPrior (500 pseudo-inputs)", "85.57 (gated networks); pythae 85.79"),
    ):
        found = [r for r in likelihood_rows or [] if r["model"] == model]
        if found:
            row = min(found, key=lambda r: r["test_nll"])  # ReLU or gated layers: the best
            out.append(
                f"| same, {name}{_gated(row)} | {_nll(row)} ({row['epochs']} epochs, best "
                f"{row.get('best_epoch')}) | {published} | {_when(row)} |"
            )
    iwae = _finished(likelihood_rows, model="iwae")
    vae = _finished(likelihood_rows, model="burda_vae")
    if iwae is not None and vae is not None and iwae["epochs"] == vae["epochs"]:
        out.append(
            f"| same, IWAE (K = 50) against the VAE, equal training ({iwae['epochs']} of "
            f"Burda et al.'s 3280 epochs) | IWAE {_nll(iwae)}, VAE {_nll(vae)} | IWAE 87.10 "
            f"(3280 epochs) | {_when(iwae)} |"
        )
    semi = _rows(folder, "semisupervised_mnist")
    for recipe, labels, name, published in (
        ("m1m2", 100, "M1+M2", "96.67 % (Kingma et al.)"),
        ("m1m2", 600, "M1+M2", "97.41 % (Kingma et al.)"),
        ("m1m2", 1000, "M1+M2", "97.60 % (Kingma et al.)"),
        ("m1m2", 3000, "M1+M2", "97.82 % (Kingma et al.)"),
        ("pyro", 100, "M2 on pixels", "88.0 % (Kingma et al.), 93.19 % (Pyro)"),
    ):
        row = _finished(semi, labels=labels, recipe=recipe)
        if row is not None:
            sd = f" ± {100 * row['accuracy_sd']:.2f}" if row.get("runs", 1) > 1 else ""
            out.append(
                f"| MNIST, {labels} labels, test accuracy, {name} | "
                f"{100 * row['accuracy_mean']:.2f} %{sd} ({_draws(row)}, {row['epochs']} "
                f"epochs; labels alone {100 * row['baseline_accuracy']:.2f} %) | {published} | "
                f"{_when(row)} |"
            )
    codes = _rows(folder, "compression")
    for dataset, name, published in (
        ("mnist_8bit", "8-bit MNIST", "BB-ANS 1.41; lzma 1.382 (measured here)"),
        ("binarized_mnist", "binarized MNIST", "BB-ANS 0.19"),
    ):
        found = [r for r in codes or [] if r["dataset"] == dataset and r["n"] == 10000]
        if found:
            row = min(found, key=lambda r: r["bits_per_dim"])  # the best model's
            out.append(
                f"| lossless bits-back, {name}, whole test set | {row['bits_per_dim']:.4f} "
                f"bits/dim ({row['likelihood']}, {row.get('prior', 'normal')} prior) | "
                f"{published} | {_when(row)} |"
            )
    return out


TABLES = {
    "readme": readme,
    "likelihood": likelihood,
    "semisupervised": semisupervised,
    "compression": compression,
    "ood": ood,
    "anomaly_mnist": anomaly_mnist,
    "disentanglement": disentanglement,
    "inference_gaps": inference_gaps,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="*", help=f"some of {', '.join(TABLES)} (default: all)")
    parser.add_argument("--results", default=None, help="default: benchmarks/results")
    args = parser.parse_args()
    folder = Path(args.results) if args.results else _results.RESULTS
    if unknown := [t for t in args.tables if t not in TABLES]:
        parser.error(f"unknown tables {unknown}; choose from {', '.join(TABLES)}")
    for name in args.tables or TABLES:
        print(f"### {name}\n")
        print("\n".join(TABLES[name](folder)))
        print()


if __name__ == "__main__":
    main()
