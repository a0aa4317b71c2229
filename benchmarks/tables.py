"""Print the documentation's markdown tables (docs/evaluation.md, docs/compression.md,
docs/model-and-guide.md) from ``benchmarks/results/*.json``.

    python benchmarks/tables.py                    # all tables
    python benchmarks/tables.py likelihood         # one: likelihood, semisupervised, ...
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
        out.append(
            f"| {LIKELIHOOD_ROWS.get(r['model'], r['model'])} | `--model {r['model']}` | "
            f"{_epochs(r)} | {r['test_nll']:.2f} ± {r['test_nll_se']:.2f}{n}{k} | "
            f"{r['test_elbo']:.2f} | {r.get('published_nll') or ''} | {_when(r)} |"
        )
    return out


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
            f"({r.get('runs', 1)} draws) | {100 * r['baseline_accuracy']:.2f} % | "
            f"{r.get('epochs', '-')} ({best}) | {_when(r)} |"
        )
    return out


def compression(folder: Path) -> list[str]:
    rows = _rows(folder, "compression")
    if rows is None:
        return [f"(no {folder / 'compression.json'})"]
    out = [
        "| dataset | likelihood | n | pyvae bits-back | negative ELBO | gzip | bz2 | lzma | "
        "PNG (per image / one image) | published BB-ANS | epochs | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = (r.get("published") or {}).get("bb_ans", "")
        out.append(
            f"| {r['dataset']} | {r.get('likelihood', '')} | {r['n']} | "
            f"**{r['bits_per_dim']:.4f}** | {r['neg_elbo_bits_per_dim']:.4f} | "
            f"{r['gzip']:.4f} | {r['bz2']:.4f} | {r['lzma']:.4f} | "
            f"{r.get('png', float('nan')):.4f} / {r.get('png_one_image', float('nan')):.4f} | "
            f"{published} | {_epochs(r)} | {_when(r)} |"
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


TABLES = {
    "likelihood": likelihood,
    "semisupervised": semisupervised,
    "compression": compression,
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
