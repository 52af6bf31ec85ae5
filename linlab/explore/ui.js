/* linlab explorer: the controls and the charts (plotly.js). Every change of a control
 * re-runs the whole training (LinlabRules.train) and redraws; changes that come during a
 * redraw coalesce into one more. */
"use strict";

(function () {
  const D = LINLAB_EXPLORER_DATA, S = D.stats, C = LinlabCore, R = LinlabRules, fmt = R.fmt;
  const rules = { ...D.rules, momentum: D.momentum };
  const $ = (id) => document.getElementById(id);
  const maxWidth = 4 * Math.max(S.d, S.k);
  const lrRange = lrBounds();
  let controls = { ...D.controls }, run = null, diagnosis = null, error = null;
  let pending = false, rendering = false, waiters = []; // a redraw is scheduled / under way
  const stats = { runs: 0, lastMs: null, trainMs: null, curveMs: null };
  // not plotly's `responsive` (it re-measures the page on every redraw): a resize listener below
  const PLOT_CONFIG = { displaylogo: false };

  function lrBounds() { // log10 of the lr slider's ends: from 1e-7 of the smallest depth-1 bound (deep,
    // wide networks from unit-scale factors are that much sharper) to 10x the largest, and at least Adam's 1
    const all = [S.lrs.sum.sgd.stable, S.lrs.mean.sgd.stable, D.controls.lr];
    return [Math.floor(Math.log10(Math.min(...all))) - 7, Math.ceil(Math.max(Math.log10(Math.max(...all)) + 1, 0))];
  }

  function readControls() {
    return {
      depth: parseInt($("depth").value, 10), width: parseInt($("width").value, 10),
      lr: Number(Math.pow(10, parseFloat($("lr").value)).toPrecision(3)), init: $("init").value,
      init_scale: Number(Math.pow(10, parseFloat($("init_scale").value)).toPrecision(3)),
      optimizer: $("optimizer").value, epochs: parseInt($("epochs").value, 10),
      reduction: $("reduction").value, seed: Math.max(0, parseInt($("seed").value, 10) || 0),
    };
  }

  function writeControls(c) {
    $("depth").value = c.depth; $("width").value = c.width; $("lr").value = Math.log10(c.lr);
    $("init").value = c.init; $("init_scale").value = Math.log10(c.init_scale); $("optimizer").value = c.optimizer;
    $("epochs").value = c.epochs; $("reduction").value = c.reduction; $("seed").value = c.seed;
  }

  function showValues(c) {
    $("depth-value").textContent = c.depth;
    $("width-value").textContent = c.depth === 1 ? "(none at depth 1)" : c.width;
    $("width").disabled = c.depth === 1;
    $("lr-value").textContent = fmt(c.lr, 3);
    $("init_scale-value").textContent = fmt(c.init_scale, 3);
    $("epochs-value").textContent = c.epochs;
    const lrs = S.lrs[c.reduction][c.optimizer === "momentum" ? "momentum" : "sgd"];
    const at = (x) => `${(100 * (Math.log10(x) - lrRange[0])) / (lrRange[1] - lrRange[0])}%`;
    $("lr-marks").innerHTML = `<span class="mark-optimal" style="left:${at(lrs.optimal)}">optimal</span>`
      + `<span class="mark-bound" style="left:${at(lrs.stable)}">bound 2/λmax</span>`;
    $("lr-note").textContent = `depth 1${c.optimizer === "momentum" ? `, momentum ${D.momentum}` : ""}: stable below `
      + `${fmt(lrs.stable, 3)} (2/λmax), optimal ${fmt(lrs.optimal, 3)}`;
  }

  // legends are HTML beside the charts (plotly's own legend doubles the cost of a redraw)
  function legend(id, traces) {
    $(id).innerHTML = traces.filter((t) => t.showlegend !== false).map((t) => `<span><i style="border-top: 2px ${
      t.line.dash ? "dashed" : "solid"} ${t.line.color}"></i>${t.name}</span>`).join("");
  }
  const MODE = (points) => (points < 30 ? "lines+markers" : "lines"); // a run that blew up at once still shows
  // no zoom layers: a redraw costs half as much (a fresh object each time: plotly writes into layouts)
  const fixed = (axis) => ({ fixedrange: true, ...axis });

  function lossChart(c) {
    const h = run.history, x = h.map((_, i) => i), floors = S.floors[c.reduction], r = Math.min(...run.widths);
    const traces = [{ x, y: h, name: "loss", mode: MODE(h.length), line: { color: "#1f4e79", width: 2 } }];
    const line = (y, name, color, dash) => ({ x: [0, Math.max(run.epochs, 1)], y: [y, y], name, mode: "lines", line: { color, dash, width: 1.5 } });
    if (floors.ls_loss > 0) traces.push(line(floors.ls_loss, `least-squares optimum L* = ${fmt(floors.ls_loss, 4)}`, "#27ae60", "dash"));
    if (r < floors.fitted_rank) traces.push(line(floors.loss[r - 1], `rank-${r} floor = ${fmt(floors.loss[r - 1], 4)}`, "#d68910", "dot"));
    return [traces, { title: { text: `loss (${c.reduction}), log scale`, font: { size: 14 } }, margin: { l: 60, r: 10, t: 36, b: 40 },
      xaxis: fixed({ title: { text: "epoch" } }), yaxis: fixed({ type: "log", exponentformat: "power" }), showlegend: false }];
  }

  function svChart() {
    const m = run.sv[0].length, colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    const traces = [];
    for (let i = 0; i < Math.min(m, 6); i++) {
      traces.push({ x: run.svEpochs, y: run.sv.map((s) => s[i]), name: `σ${i + 1}(W)`, mode: MODE(run.sv.length),
        line: { color: colors[i], width: 2 } });
      traces.push({ x: [0, Math.max(run.epochs, 1)], y: [S.ls_sv[i], S.ls_sv[i]], name: `σ${i + 1} target`, mode: "lines",
        line: { color: colors[i], dash: "dash", width: 1 }, showlegend: i === 0, legendgroup: "target" });
    }
    traces.filter((t) => t.legendgroup === "target").forEach((t) => { t.name = "targets (σ of least-squares W)"; });
    return [traces, { title: { text: "singular values of W = W1⋯WL (Saxe's modes)", font: { size: 14 } },
      margin: { l: 50, r: 10, t: 36, b: 40 }, xaxis: fixed({ title: { text: "epoch" } }), yaxis: fixed({}), showlegend: false }];
  }

  function wChart() {
    const learned = C.toNested(run.W), target = S.P_ls, top = Math.max(...target.flat().map(Math.abs), 1e-300);
    const cap = (v) => (Number.isFinite(v) ? Math.max(-3 * top, Math.min(3 * top, v)) : null);
    const heat = (z, xaxis, yaxis, show) => ({ z: z.map((row) => row.map(cap)), type: "heatmap", xaxis, yaxis, zmin: -top, zmax: top,
      colorscale: "RdBu", reversescale: true, showscale: show, hovertemplate: "feature %{y}, target %{x}: %{z:.4g}<extra></extra>" });
    return [[heat(learned, "x", "y", false), heat(target, "x2", "y2", true)], {
      title: { text: "learned end-to-end W (left) beside the least-squares W (right)", font: { size: 14 } },
      grid: { rows: 1, columns: 2, pattern: "independent" }, margin: { l: 40, r: 10, t: 36, b: 30 },
      yaxis: fixed({ autorange: "reversed", title: { text: "feature" } }), yaxis2: fixed({ autorange: "reversed" }),
      xaxis: fixed({ title: { text: "target" }, dtick: 1 }), xaxis2: fixed({ title: { text: "target" }, dtick: 1 }) }];
  }

  function showOutcome() {
    const word = $("outcome-word");
    if (error) {
      word.textContent = "error"; word.className = "diverged"; $("outcome-message").textContent = error;
      $("outcome-verdict").textContent = ""; $("outcome-advice").innerHTML = ""; $("outcome-loop").textContent = "";
      return;
    }
    word.textContent = diagnosis.word; word.className = diagnosis.word.replace(" ", "-");
    $("outcome-verdict").textContent = diagnosis.verdict;
    $("outcome-message").textContent = diagnosis.message;
    $("outcome-advice").innerHTML = "";
    diagnosis.advice.forEach((tip) => { const li = document.createElement("li"); li.textContent = tip; $("outcome-advice").appendChild(li); });
    $("outcome-loop").textContent = `the run: ${run.message}`;
  }

  async function render() {
    pending = false; rendering = true;
    const t0 = performance.now(), c = readControls();
    try {
      await trainAndDraw(c, t0);
    } finally {
      stats.runs += 1; stats.lastMs = performance.now() - t0; rendering = false;
    }
    const n = run ? run.epochs : 0;
    $("timing").textContent = `${n} epoch${n === 1 ? "" : "s"} trained and diagnosed in ${stats.trainMs.toFixed(1)} ms; `
      + `curve redrawn after ${(stats.curveMs || 0).toFixed(1)} ms, all views after ${stats.lastMs.toFixed(1)} ms`;
    if (pending) { setTimeout(render, 0); return; } // a change came during this redraw: the waiters wait on
    const done = waiters; waiters = [];
    done.forEach((w) => w(api.state()));
  }

  async function trainAndDraw(c, t0) {
    controls = c;
    showValues(c);
    try {
      run = R.train(S, c, rules);
      diagnosis = R.diagnose(run, S, rules);
      error = null;
    } catch (e) {
      error = String(e.message || e);
    }
    stats.trainMs = performance.now() - t0;
    showOutcome();
    if (error) return;
    const [traces, layout] = lossChart(c); // the loss curve first; the other views in the next frame
    legend("loss-legend", traces);
    await Plotly.react("loss-chart", traces, layout, PLOT_CONFIG);
    stats.curveMs = performance.now() - t0;
    await new Promise((resolve) => requestAnimationFrame(resolve));
    stats.curveShownAt = performance.now(); // the frame that shows the new curve
    if (pending) return; // a newer change came: its redraw replaces these views
    const [svTraces, svLayout] = svChart();
    legend("sv-legend", svTraces);
    await Promise.all([Plotly.react("sv-chart", svTraces, svLayout, PLOT_CONFIG),
      Plotly.react("w-chart", ...wChart(), PLOT_CONFIG)]);
  }

  function schedule() { // at once when idle; during a redraw, once more after it (changes coalesce)
    if (pending) return;
    pending = true;
    if (!rendering) setTimeout(render, 0);
  }

  const api = {
    /** Everything a test needs: the controls, the factors the page drew, its losses, the outcome. */
    state() {
      return {
        controls, widths: run && run.widths, error, runs: stats.runs, lastMs: stats.lastMs, trainMs: stats.trainMs, curveMs: stats.curveMs,
        curveShownAt: stats.curveShownAt,
        busy: pending || rendering,
        initial: run && run.initial.map(C.toNested), factors: run && run.factors.map(C.toNested),
        history: run && run.history.slice(), outcome: run && run.outcome, message: run && run.message,
        epochs: run && run.epochs, verdict: diagnosis && diagnosis.verdict, word: diagnosis && diagnosis.word,
        diagnosis: diagnosis && diagnosis.message, advice: diagnosis && diagnosis.advice,
      };
    },
    /** A promise of the state after the next redraw. */
    rendered() { return new Promise((resolve) => { waiters.push(resolve); }); },
    /** Set some controls (as the DOM does) and resolve once the page has redrawn. */
    set(partial) { writeControls({ ...readControls(), ...partial }); const p = api.rendered(); schedule(); return p; },
  };
  window.linlabExplorer = api;

  $("dataset").textContent = `${S.name}: n = ${S.n} rows, d = ${S.d} features → k = ${S.k} targets`;
  $("width").max = maxWidth; $("lr").min = lrRange[0]; $("lr").max = lrRange[1];
  writeControls(controls);
  ["depth", "width", "lr", "init_scale", "epochs", "seed"].forEach((id) => $(id).addEventListener("input", schedule));
  ["init", "optimizer", "reduction", "seed"].forEach((id) => $(id).addEventListener("change", schedule));
  window.addEventListener("resize", () => ["loss-chart", "sv-chart", "w-chart"].forEach((id) => Plotly.Plots.resize(id)));
  schedule();
})();
