/* linlab explorer: the controls and the views (charts by uPlot). Every change of a control
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
  const stats = { runs: 0, lastMs: null, trainMs: null, curveMs: null, drawMs: null };
  const charts = {}; // id → {plot: the uPlot chart, key: its series}: new data redraws it, new series rebuild it

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

  // legends are HTML beside the charts: one entry for all the targets' lines
  function legend(id, series) {
    $(id).innerHTML = series.filter((t) => t.legend !== false).map((t) => `<span><i style="border-top: 2px ${
      t.dash ? "dashed" : "solid"} ${t.stroke}"></i>${t.label}</span>`).join("");
  }
  const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  const power = (v) => { // 10⁶ for the powers of ten a log axis labels, its own digits for others
    const e = Math.round(Math.log10(v));
    return Math.abs(v / Math.pow(10, e) - 1) < 1e-9 ? `10${String(e).replace(/./g, (ch) => SUPERSCRIPT[ch])}` : fmt(v, 2);
  };

  function decades(u, axis, lo, hi) { // a log axis's ticks: powers of ten, at most 8 of them
    const a = Math.ceil(Math.log10(lo) - 1e-9), b = Math.floor(Math.log10(hi) + 1e-9), step = Math.max(1, Math.ceil((b - a + 1) / 8));
    const ticks = [];
    for (let e = a; e <= b; e += step) ticks.push(Math.pow(10, e));
    return ticks;
  }

  // draw `data` ([x, ...ys]) with `series` into the chart `id`: a chart whose series are the same
  // only takes the new data (uPlot then redraws its canvas at once, with new ranges)
  function draw(id, title, series, data, logY) {
    const el = $(id), key = JSON.stringify([title, series, logY]), chart = charts[id];
    if (chart && chart.key === key) { chart.plot.setData(data); return; }
    if (chart) chart.plot.destroy();
    const opts = {
      title, width: el.clientWidth, height: el.clientHeight - 30, legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false }, y: logY ? { distr: 3, log: 10 } : {} },
      axes: [{ label: "epoch", labelSize: 20 }, logY ? { splits: decades, filter: (u, ticks) => ticks, values: (u, ticks) => ticks.map(power), size: 60 } : { size: 60 }],
      series: [{}, ...series.map((t) => ({ label: t.label, stroke: t.stroke, width: t.width, dash: t.dash,
        points: { show: t.points, size: 5, fill: t.stroke } }))],
    };
    charts[id] = { key, plot: new uPlot(opts, data, el) };
  }
  const constant = (n, y) => new Float64Array(n).fill(y);

  function drawLoss(c) {
    const h = run.history, n = h.length, floors = S.floors[c.reduction], r = Math.min(...run.widths);
    const x = Float64Array.from(h, (_, i) => i), series = [{ label: "loss", stroke: "#1f4e79", width: 2, points: n < 30 }];
    const data = [x, Float64Array.from(h)]; // a run that blew up at once still shows: its few points are marked
    if (floors.ls_loss > 0) {
      series.push({ label: `least-squares optimum L* = ${fmt(floors.ls_loss, 4)}`, stroke: "#27ae60", width: 1.5, dash: [6, 4], points: n < 2 });
      data.push(constant(n, floors.ls_loss));
    }
    if (r < floors.fitted_rank) {
      series.push({ label: `rank-${r} floor = ${fmt(floors.loss[r - 1], 4)}`, stroke: "#d68910", width: 1.5, dash: [2, 3], points: n < 2 });
      data.push(constant(n, floors.loss[r - 1]));
    }
    legend("loss-legend", series);
    draw("loss-chart", `loss (${c.reduction}), log scale`, series, data, true);
  }

  function drawModes() {
    const m = Math.min(run.sv[0].length, 6), n = run.svEpochs.length, colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    const series = [], data = [Float64Array.from(run.svEpochs)];
    for (let i = 0; i < m; i++) {
      series.push({ label: `σ${i + 1}(W)`, stroke: colors[i], width: 2, points: n < 30 });
      data.push(Float64Array.from(run.sv, (s) => s[i]));
      series.push({ label: "targets (σ of least-squares W)", stroke: colors[i], width: 1, dash: [6, 4], legend: i === 0, points: n < 2 });
      data.push(constant(n, S.ls_sv[i]));
    }
    legend("sv-legend", series);
    draw("sv-chart", "singular values of W = W1⋯WL (Saxe's modes)", series, data, false);
  }

  // the learned W beside the least-squares W: tables of their entries, shaded from blue (−) to red (+)
  function drawW() {
    const learned = C.toNested(run.W), target = S.P_ls, top = Math.max(...target.flat().map(Math.abs), 1e-300);
    const shade = (v) => {
      if (!Number.isFinite(v)) return "#888";
      const a = Math.min(Math.abs(v) / top, 1), [r, g, b] = v < 0 ? [33, 102, 172] : [178, 24, 43];
      return `rgb(${Math.round(255 + a * (r - 255))}, ${Math.round(255 + a * (g - 255))}, ${Math.round(255 + a * (b - 255))})`;
    };
    const table = (caption, M) => `<table><caption>${caption}</caption><tr><th>feature</th>${M[0].map((_, j) => `<th>target ${j}</th>`).join("")}</tr>`
      + M.map((row, i) => `<tr><th>${i}</th>${row.map((v) => `<td style="background:${shade(v)}">${fmt(v, 3)}</td>`).join("")}</tr>`).join("") + "</table>";
    $("w-chart").innerHTML = table("learned end-to-end W = W1⋯WL", learned) + table("least-squares W", target);
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
    drawLoss(c); // the loss curve first, alone in the next frame; the other views in the frame after
    await Promise.resolve(); // uPlot draws on the microtask after setData
    stats.curveMs = performance.now() - t0;
    await new Promise((resolve) => requestAnimationFrame(resolve));
    stats.curveShownAt = performance.now(); // the frame that shows the new curve
    await new Promise((resolve) => setTimeout(resolve, 0)); // once that frame is painted
    if (pending) return; // a newer change came: its redraw replaces these views
    const t1 = performance.now();
    drawModes();
    drawW();
    await Promise.resolve();
    stats.drawMs = stats.curveMs - stats.trainMs + performance.now() - t1;
  }

  function schedule() { // at once when idle (in the event's own task); during a redraw, once more after it
    if (pending) return; // (changes coalesce)
    pending = true;
    if (!rendering) render();
  }

  const api = {
    /** Everything a test needs: the controls, the factors the page drew, its losses, the outcome. */
    state() {
      return {
        controls, widths: run && run.widths, error, runs: stats.runs, lastMs: stats.lastMs, trainMs: stats.trainMs, curveMs: stats.curveMs,
        drawMs: stats.drawMs, curveShownAt: stats.curveShownAt,
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
  window.addEventListener("resize", () => Object.entries(charts).forEach(([id, chart]) => {
    chart.plot.setSize({ width: $(id).clientWidth, height: $(id).clientHeight - 30 });
  }));
  schedule();
})();
