"""The study's report: what ``linlab reproduce`` computed, in words, tables and plots.

It never trains: every number comes from :class:`linlab.study.run.Study`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import plots
from .document import Document


def _g(x, spec: str = ".4g") -> str:
    return "-" if x is None else format(x, spec)


def explorer(doc: Document, out: Path) -> Path:
    """Write ``explorer.html`` (the seed data's interactive explorer) into `out` and link it."""
    from ..data import seed_dataset
    from ..explore import write_explorer

    # the seed's width-5 network at the seed's lr: drag width to 1, or lr past the bound, from there
    path = write_explorer(seed_dataset(), out / "explorer.html", depth=2, width=5, lr=1e-5)
    doc.h("Interactive explorer")
    doc.link(path.name, "Open explorer.html: drag the width, depth, lr or init and gradient descent "
                        "re-runs in the page, on the seed data's statistics.")
    return path


def _programs(doc: Document, study, out: Path) -> Path:
    doc.h("The seed's programs, replayed")
    doc.p("Each program ran exactly as the post wrote it, on its own data stream and initial weights; "
          "the log lines below are the original programs' output to the digit.")
    rows = []
    for r in study.replays:
        s = r.summary()
        rows.append([f"{s['step']}: `{s['name']}`", ",".join(map(str, s["widths"])), s["optimizer"],
                     f"{s['lr']:g}", r.outcome, _g(r.epochs_to_tol, "d"), _g(s["final_loss"]),
                     _g(s["relative_error"], ".2g")])
    doc.table(["step", "widths", "optimizer", "lr", "outcome", "epoch of tol", "last loss",
               "‖W − W_true‖/‖W_true‖"], rows)
    png = plots.loss_curves([(f"{r.program.step}: {r.program.name}", r.history) for r in study.replays],
                            out / "loss_curves.png", tol=1e-4)
    doc.img(png, "Loss of every seed program against epoch (log scale); the width-1 large-lr run "
                 "overflows to nan after its first epochs.")
    for r in study.replays:
        doc.code(f"# step {r.program.step}: {r.program.title}\n" + "\n".join(r.lines[:5] + ["..."] + r.lines[-2:])
                 + f"\n-> {r.message}")
    return png


def _answer_1_to_3(doc: Document, a: dict) -> None:
    f, s, q = a["rank_floor"], a["stability"], a["fewer_iterations"]
    doc.h("1. Why width 1 cannot reach 0")
    doc.p(f"W1·W2 with a hidden width of 1 has rank at most 1, but the least-squares fitted values have rank "
          f"{f['fitted_rank']} (singular values {', '.join(f'{v:.1f}' for v in f['fitted_singular_values'])}). "
          f"The best rank-1 fit (Eckart-Young) leaves loss **{f['floor_loss']:.1f}**, "
          f"{100 * f['floor_share']:.1f}% of ‖Y‖². The seed's run at lr 1e-5 {f['run_outcome']} at "
          f"{f['run_final_loss']:.4f}, {abs(f['run_gap']):.1e} (relative) from that floor. Width "
          f"{f['width_needed']} removes the floor: the seed's width-5 run reaches the tolerance at epoch "
          f"{f['width5_epochs_to_tol']} (at lr 1e-6, from the same weights, at epoch "
          f"{f['width5_epochs_at_1e-6']}, "
          "near the post's \"about epoch 420\", whose lr it does not give).")
    doc.h("2. Why a large learning rate gives nan")
    doc.p(f"Plain regression is stable only for lr < 2/λmax = **{s['direct_bound']:.4g}** (λmax = "
          f"{s['lam_max']:.1f}). At 0.98× the bound the run {s['direct_below']['outcome']} "
          f"(epoch {_g(s['direct_below']['epochs_to_tol'], 'd')}); at 1.02× it {s['direct_above']['outcome']} "
          f"({s['direct_above']['message']}). For width 1 the bound is 2/sharpness at the seed's initial "
          f"factors, {s['width1_bound']:.3g}: at half of it the run {s['width1_below']['outcome']}, at twice "
          f"it {s['width1_above']['outcome']}. The seed's lr 0.01 is **{s['seed_lr_over_bound']:.0f}×** that "
          f"bound: the loss grows by orders of magnitude per epoch, overflows, and every printed line reads "
          f"`{s['seed_first_nonfinite_line']}`.")
    doc.h("3. Fewer iterations")
    doc.p(f"The Hessian 2XᵀX has eigenvalues in [{q['lam_min']:.1f}, {q['lam_max']:.1f}] (condition "
          f"{q['condition']:.2f}). The best constant lr 2/(λmin+λmax) = **{q['optimal_lr']:.4g}** contracts the "
          f"error {q['rate']:.3f}× per epoch and reaches the tolerance in **{q['forecast_epochs']} epochs** "
          f"(forecast from the spectrum; the run takes {q['run_epochs']}), against {q['seed_run_epochs']} at "
          f"the seed's lr 1e-5 (forecast {q['seed_forecast_epochs']}; the post says about 700). Heavy-ball "
          f"momentum at lr {q['momentum_lr']:.4g}, momentum {q['momentum']:.4f} contracts "
          f"{q['momentum_rate']:.3f}× per epoch and needs {q['momentum_run_epochs']} epochs.")


def _series(table: list[dict], key: str, label: str):
    xs = [e["width"] for e in table]
    facts = [e.get(key) or {} for e in table]
    return (label, xs, [f.get("epochs_median") for f in facts], [f.get("epochs_min") for f in facts],
            [f.get("epochs_max") for f in facts])


def _answer_4(doc: Document, study, out: Path) -> list[Path]:
    sc = study.answers["scaling"]
    sgd, adam = sc["sgd"], study.answers["adam"]["adam"]
    doc.h("4. Do more parameters converge faster?")
    rows = [[e["width"], e["n_params"], f"{e['fixed']['converged']}/{e['fixed']['runs']}",
             _g(e["fixed"]["epochs_median"], "g"), f"{e['best']['lr']:.2g}",
             _g(e["best"]["epochs_median"], "g"), f"{e['sharpness']:.3g}", f"{e['stability_lr']:.2g}",
             _g(e["flops_to_tol"], ".3g"), _g(e["seconds_to_tol"] and e["seconds_to_tol"] * 1e3, ".3g")]
            for e in sgd]
    doc.table(["h", "params", "tol at lr 1e-5", "epochs at 1e-5", "best lr", "epochs at best",
               "sharpness at init", "2/sharpness", "FLOPs to tol", "ms to tol"], rows)
    converged = [e for e in sgd if e["best"]["epochs_median"] is not None]
    fastest = min(converged, key=lambda e: e["best"]["epochs_median"]) if converged else None
    cheapest = min(converged, key=lambda e: e["flops_to_tol"]) if converged else None
    diverged = [str(e["width"]) for e in sgd if e["fixed"]["diverged"] == e["fixed"]["runs"]]
    never = [str(e["width"]) for e in sgd if e["best"]["epochs_median"] is None]
    first, last = sgd[0], sgd[-1]
    sharp = f"{first['sharpness']:.3g} at h = {first['width']} to {last['sharpness']:.3g} at h = {last['width']}"
    doc.p(f"{len(sc['seeds'])} seeds per cell (random normal factors, std 1), tolerance {sc['tol']:g}. "
          + (f"At the seed's fixed lr 1e-5, every run of h = {', '.join(diverged)} diverges. " if diverged else "")
          + f"The sharpness at the initial factors grows with the width, from {sharp}: the factors' scale "
          "multiplies the step the end-to-end matrix takes (W ← W − η(W1W1ᵀ∇ + ∇W2ᵀW2)), so one fixed lr is "
          "too small for narrow networks and unstable for wide ones, and only each width at its own best lr "
          "compares like with like."
          + (f" There, the fewest epochs are at h = {fastest['width']} ({fastest['best']['epochs_median']:g}), "
             f"the fewest FLOPs at h = {cheapest['width']} ({cheapest['flops_to_tol']:.3g})." if fastest else "")
          + (f" h = {', '.join(never)} never reaches the tolerance at any lr (the rank floor)." if never else "")
          + " An epoch's FLOPs grow linearly with h, so fewer iterations do not mean less work.")
    files = [plots.epochs_to_tol([_series(sgd, "fixed", "SGD at the seed's lr 1e-5"),
                                  _series(sgd, "best", "SGD at each width's best lr"),
                                  _series(adam, "best", "Adam at each width's best lr")],
                                 out / "epochs_vs_width.png", "hidden width h (log scale)",
                                 "Epochs to reach the tolerance against width")]
    doc.img(files[-1], "Epochs to tolerance against hidden width: at the seed's fixed lr and at each width's "
                       "best lr (band: range over seeds; × at 1: no run reached the tolerance).")
    files.append(_outcome_map(study, sgd, out / "outcome_map.png"))
    doc.img(files[-1], "How each SGD run ended, by learning rate and hidden width (most frequent outcome over "
                       "seeds), with the stability bound 2/sharpness at the initial factors.")
    files.append(plots.costs([(f"h={e['width']}", e["n_params"], e["seconds_to_tol"], e["flops_to_tol"])
                              for e in sgd], out / "costs.png"))
    doc.img(files[-1], "Wall time (one numpy-engine run, seed 0) and matrix-product FLOPs to the tolerance, "
                       "at each width's best lr, against the parameter count.")
    return files


def _outcome_map(study, sgd: list[dict], path: Path) -> Path:
    rows = [r for r in study.sweep.drop_columns(["history"]).to_pylist() if r["optimizer"] == "sgd"]
    lrs = sorted({r["lr"] for r in rows})
    widths = [e["width"] for e in sgd]
    cells = []
    for h in widths:
        col = []
        for lr in lrs:
            names = [r["outcome"] for r in rows if r["lr"] == lr and int(r["widths"].split(",")[1]) == h]
            col.append(max(set(names), key=names.count) if names else None)
        cells.append(col)
    return plots.outcome_map(widths, lrs, cells, path, bound=[e["stability_lr"] for e in sgd])


def _span(values) -> str:
    return "-" if not values else f"{min(values):g}-{max(values):g}"


def _answer_5_6(doc: Document, study, out: Path) -> Path:
    ad = study.answers["adam"]
    doc.h("5. Adam against SGD")
    rows = [[s["width"], f"{s['best']['lr']:.2g}", _g(s["best"]["epochs_median"], "g"),
             f"{a['best']['lr']:.2g}", _g(a["best"]["epochs_median"], "g"),
             f"{a['fixed']['converged']}/{a['fixed']['runs']}"] for s, a in zip(ad["sgd"], ad["adam"])]
    doc.table(["h", "SGD best lr", "SGD epochs", "Adam best lr", "Adam epochs", "Adam at lr 0.1: reached tol"],
              rows)
    adam_e = [a["best"]["epochs_median"] for a in ad["adam"] if a["best"]["epochs_median"] is not None]
    sgd_e = [s["best"]["epochs_median"] for s in ad["sgd"] if s["best"]["epochs_median"] is not None]
    runs = [r for r in study.sweep.drop_columns(["history"]).to_pylist()
            if r["optimizer"] == "adam" and r["widths"] != "10,1,2"]
    lrs = sorted({r["lr"] for r in runs})
    reached = sum(r["outcome"] == "converged" for r in runs)
    doc.p(f"At their best lrs, Adam needs {_span(adam_e)} epochs across the widths and SGD {_span(sgd_e)}. "
          f"Adam reaches the tolerance in {reached} of its {len(runs)} runs at widths 2-200 over every lr tried "
          f"({', '.join(f'{lr:g}' for lr in lrs)}), while SGD's usable lrs fall with the sharpness: Adam divides "
          "each step by the gradient's running scale, so its lr does not depend on the factors' scale, but its "
          "step does not shrink as the gradient does, so it approaches the optimum more slowly. "
          "The seed's own pair: Adam at lr 0.1 reaches the tolerance at epoch "
          f"{ad['seed_adam_epochs']}, SGD at lr 1e-5 at epoch {ad['seed_sgd_epochs']}.")
    c = study.answers["condense"]
    doc.h("6. Condensing the model")
    losses = ", ".join(f"width {r}: {v:.4g}" for r, v in enumerate(c["losses"], 1))
    values = ", ".join(f"{v:.4g}" for v in c["singular_values"])
    doc.p(f"Start with many parameters, then condense: a network of widths {tuple(c['original_widths'])} "
          f"({c['original_params']} parameters) trained at lr {c['trained_lr']:.2g} {c['trained_outcome']} at "
          f"epoch {c['trained_epochs']}, loss {c['original_loss']:.3g}. Its end-to-end matrix W1·W2 (10×2) has "
          f"rank at most 2; the fitted values' singular values are {values}. "
          f"Truncated to each rank and evaluated on the data: {losses}. The smallest width within "
          f"{c['tol']:g} of the original loss is **{c['width']}**: a balanced network of widths "
          f"{tuple(c['widths'])} ({c['params']} parameters, balancedness {c['balancedness']:.1e}) with loss "
          f"{c['loss']:.3g}. `linlab compress CHECKPOINT --tol T --out SMALL.ckpt` does the same to any "
          "trained checkpoint.")
    W_true = np.asarray(study.replays[0].W_true, dtype=float)
    paths = [(f"seed's width 5 at lr 1e-5 ({study.paths['seed-width5']['n_params']} params)",
              study.paths["seed-width5"]["singular_values"]),
             (f"width {study.paths['wide']['widths'][1]} at lr {study.paths['wide']['lr']:.2g} "
              f"({study.paths['wide']['n_params']} params)", study.paths["wide"]["singular_values"])]
    png = plots.singular_values(paths, out / "singular_values.png",
                                reference=np.linalg.svd(W_true, compute_uv=False))
    doc.img(png, "Singular values of W1·W2 against epoch for the seed's width-5 run and a wide network; "
                 "dashed: the true W's.")
    return png


def write_study_report(study, out) -> dict:
    """Write the plots, ``report.md`` and a self-contained ``report.html`` into `out`; return the files."""
    from ..atomic import atomic_write

    out = Path(out)
    doc = Document("linlab: the seed study, reproduced and answered")
    doc.p("Linear regression y = x·W on the seed's toy data (1000 × 10 → 2), trained by gradient descent as "
          "in the post, then each of its questions answered with theory and measurements. Every number below "
          "was computed by `linlab reproduce`" + (" (--fast: a reduced sweep)" if study.config.get("fast") else "")
          + ".")
    files = {"explorer": explorer(doc, out), "loss_curves": _programs(doc, study, out)}
    _answer_1_to_3(doc, study.answers)
    for path in _answer_4(doc, study, out):
        files[path.stem] = path
    files["singular_values"] = _answer_5_6(doc, study, out)
    doc.h("Files")
    doc.p("`results.parquet`: every sweep run (config, outcome, loss history); `results.json`: every number "
          "in this report; `config.json`: the sweep's settings; `model.ckpt`: step 7's state_dict.")
    files["report_md"] = atomic_write(out / "report.md", lambda f: f.write(doc.markdown().encode()))
    files["report"] = atomic_write(out / "report.html", lambda f: f.write(doc.html().encode()))
    return files
