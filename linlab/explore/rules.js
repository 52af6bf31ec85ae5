/* linlab explorer: every rule the page shares with linlab, in this one file.
 *
 *  1. train(): the training loop of linlab/engines/loop.py (fit): its stop rules
 *     (diverged / converged / stalled / the epoch limit) and their messages.
 *  2. diagnose(): the verdicts of linlab/diagnose.py, checked in the same order with the
 *     same thresholds and messages: diverged (blown up, or ended above its start),
 *     converged_optimum, converged_floor, stalled_floor, unstable (depth 1 at or past
 *     2(1+μ)/λmax), saddle, too_slow, still_improving, stalled_other. The numbers the page
 *     cannot compute (L* with an intercept, κ of XᵀX standardized) come embedded.
 *  3. fmt(): Python's "{:.Ng}" format, so that numbers read as linlab prints them.
 *
 * When linlab's loop or diagnosis changes, this file is what follows it. */
"use strict";

const LinlabRules = (function () {
  const C = typeof LinlabCore !== "undefined" ? LinlabCore : require("./core.js");
  const SLOW = 0.5; // diagnose.SLOW: an lr below SLOW × the recommended one counts as too slow
  const SADDLE_RTOL = 1e-8; // diagnose.SADDLE_RTOL
  const SAFETY = 0.5; // theory.lr.SAFETY: lr="auto" at depth > 1 is SAFETY × 2/sharpness
  const COND_WARN = 100; // diagnose.COND_WARN: a κ of XᵀX above this is named as a cause of slow descent
  const INTERCEPT_GAIN = 0.5; // diagnose.INTERCEPT_GAIN: L* with a bias below this × L* without: named
  const OPTIMUM = "the least-squares optimum L*"; // diagnose._Run.optimum_name for the squared loss
  const ADD_A_BIAS = "Add a bias (--bias, bias=True)."; // diagnose._add_a_bias for data with rows
  const WORDS = { // the outcome in one word, per verdict
    diverged: "diverged", unstable: "unstable", converged_optimum: "converged", converged_floor: "floor", stalled_floor: "floor",
    saddle: "still going", too_slow: "still going", still_improving: "still going", stalled_other: "still going",
  };

  // Python's format(x, ".Ng")
  function fmt(x, digits) {
    const p = digits === undefined ? 6 : Math.max(digits, 1);
    if (Number.isNaN(x)) return "nan";
    if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
    if (x === 0) return Object.is(x, -0) ? "-0" : "0";
    const [mant, e] = x.toExponential(p - 1).split("e"), exp = parseInt(e, 10);
    const strip = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
    if (exp < -4 || exp >= p) {
      return `${strip(mant)}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
    }
    return strip(x.toFixed(Math.max(p - 1 - exp, 0)));
  }

  // ---- 1. the training loop: linlab/engines/loop.py fit(), full batch, constant lr ----
  let drawn = { key: null, factors: null };
  function initialFactors(widths, c) { // drawn again only when these controls change (not for a new lr)
    const key = JSON.stringify([widths, c.init, c.init_scale, c.seed]);
    if (drawn.key !== key) drawn = { key, factors: C.initFactors(widths, c.init, c.init_scale, c.seed) };
    return drawn.factors; // train() copies them
  }

  function train(stats, controls, rules, startFactors) {
    const widths = C.widthsOf(stats, controls.depth, controls.width);
    const factors = (startFactors || initialFactors(widths, controls)).map(C.copy);
    const initial = factors.map(C.copy), prob = C.problem(stats, controls.reduction);
    const step = C.optimizer(controls.optimizer, factors, { betas: rules.betas, eps: rules.eps, momentum: rules.momentum });
    const lr = controls.lr, epochs = controls.epochs, stride = Math.max(1, Math.ceil(epochs / 500));
    const ws = C.workspace(prob, widths);
    const history = [], best = [], sv = [], svEpochs = [];
    let outcome = "max_epochs", message = "", snapshot = null, epochsToTol = null;
    for (let t = 0; t <= epochs; t++) {
      const loss = C.epoch(prob, factors, ws), P = ws.P;
      const limit = rules.diverge_factor * Math.max(history.length ? history[0] : loss, 1e-300);
      if (!history.length && !Number.isFinite(loss)) {
        throw new Error(`the loss at the initial factors is ${loss}: lower the init scale.`);
      }
      if (!Number.isFinite(loss) || (history.length && loss > limit)) {
        outcome = "diverged";
        message = `diverged at epoch ${t}: loss became ${fmt(loss, 4)} with lr=${fmt(lr, 3)}; kept the `
          + `last finite state (epoch ${t - 1}, loss ${fmt(history[history.length - 1], 4)}).`;
        snapshot.forEach((W, j) => factors[j].a.set(W.a));
        break;
      }
      history.push(loss);
      best.push(best.length ? Math.min(loss, best[best.length - 1]) : loss);
      if (t % stride === 0 || t === epochs) { sv.push(C.singularValues(P)); svEpochs.push(t); }
      if (t === epochs) { message = `reached the epoch limit ${t} at loss ${fmt(loss, 4)}.`; break; }
      if (loss <= rules.tol) {
        outcome = "converged"; epochsToTol = t;
        message = `converged at epoch ${t}: loss ${fmt(loss, 4)} <= tol ${fmt(rules.tol)}.`;
        break;
      }
      const w = rules.stall_window;
      if (t >= w && best[t - w] - best[t] <= rules.stall_rtol * best[t - w]) {
        outcome = "stalled";
        message = `stalled at epoch ${t}: the best loss improved by less than ${fmt(rules.stall_rtol)} `
          + `(relative) over the last ${w} epochs, at ${fmt(best[t])}.`;
        break;
      }
      if (snapshot) snapshot.forEach((W, j) => W.a.set(factors[j].a)); else snapshot = factors.map(C.copy);
      step(lr, ws.grad);
    }
    const last = history.length - 1;
    if (svEpochs[svEpochs.length - 1] !== last) { sv.push(C.singularValues(C.product(factors))); svEpochs.push(last); }
    return { widths, controls, initial, factors, history, outcome, message, epochsToTol, sv, svEpochs,
      epochs: last, finalLoss: history[last], W: C.product(factors) };
  }

  // ---- 2. the diagnosis: linlab/diagnose.py ----
  function theory(run, stats, rules) { // diagnose._theory: L*, the floor, κ, the lr bounds
    const c = run.controls, red = stats.floors[c.reduction], r = Math.min(...run.widths);
    const cond = stats.condition[c.reduction];
    const out = { lsLoss: red.ls_loss, withBias: red.ls_with_bias, kappa: cond.kappa, kappaScaled: cond.standardized,
      floor: null, stableLr: null, suggestedLr: null, boundOf: "the Hessian", exactBound: false, lrOverBound: null };
    if (r < red.fitted_rank) {
      out.floor = { width: r, loss: red.loss[r - 1], share: red.share[r - 1], fittedRank: red.fitted_rank, lsLoss: red.ls_loss };
    }
    const mu = c.optimizer === "momentum" ? rules.momentum : 0, lrs = stats.lrs[c.reduction];
    if (c.depth === 1) { // 2(1+μ)/λmax, exact for plain and heavy-ball SGD on the full batch
      out.stableLr = lrs[c.optimizer === "momentum" ? "momentum" : "sgd"].stable;
      out.exactBound = c.optimizer !== "adam";
      if (c.optimizer !== "adam") out.suggestedLr = lrs[c.optimizer].optimal;
    } else {
      const top = sharpnessAtStart(run, stats); // at the initial factors
      out.stableLr = top > 0 ? 2 / top : null;
      if (c.optimizer !== "adam" && top > 0) out.suggestedLr = SAFETY * 2 * (1 - mu) / top;
    }
    return out;
  }

  let cached = { key: null, top: null };
  function sharpnessAtStart(run, stats) { // the initial factors change only with these controls
    const c = run.controls, key = JSON.stringify([c.depth, c.width, c.init, c.init_scale, c.seed, c.reduction, stats.n]);
    if (cached.key !== key) cached = { key, top: C.sharpness(C.problem(stats, c.reduction), run.initial) };
    return cached.top;
  }

  function near(run, target, rules, rtol) { // diagnose._Run.near
    return run.finalLoss - target <= Math.max(rules.tol, (rtol || 1e-6) * Math.abs(target));
  }

  function lowerLrAdvice(run, th) { // diagnose._lower_lr_advice
    const advice = [];
    if (th.stableLr) {
      th.lrOverBound = run.controls.lr / th.stableLr;
      advice.push(`Use lr < ${fmt(th.stableLr, 3)}, or lr="auto".`);
    } else {
      advice.push("Lower lr (e.g. 10x) until the loss decreases steadily.");
    }
    if (th.suggestedLr) advice.push(`lr=${fmt(th.suggestedLr, 3)} is what lr="auto" picks here.`);
    return advice;
  }

  function diverged(run, th) { // blown up, or ended above where it started
    const h = run.history, rose = h.length > 1 && run.finalLoss > h[0];
    if (run.outcome !== "diverged" && Number.isFinite(run.finalLoss) && !rose) return null;
    const lr = run.controls.lr, advice = lowerLrAdvice(run, th);
    const what = run.outcome === "diverged" || !Number.isFinite(run.finalLoss) ? "the loss blew up"
      : `the loss rose from ${fmt(h[0])} to ${fmt(run.finalLoss)} (${run.outcome})`;
    let msg = `${what} with lr=${fmt(lr, 3)}.`;
    if (th.stableLr) {
      msg = `lr=${fmt(lr, 3)} is ${fmt(th.lrOverBound, 3)}x the stability bound ${fmt(th.stableLr, 3)} `
        + `(2/λmax of ${th.boundOf}); ${what}.`;
    }
    return { verdict: "diverged", message: msg, advice };
  }

  function unstable(run, th) { // lr at or above 2(1+μ)/λmax on a quadratic: the top mode never contracts
    const lr = run.controls.lr;
    if (!(th.exactBound && th.stableLr && lr >= th.stableLr * (1 - 1e-12))) return null;
    const advice = lowerLrAdvice(run, th);
    const how = lr <= th.stableLr * (1 + 1e-12) ? "neither shrinks nor grows" : "grows";
    const msg = `lr=${fmt(lr, 3)} is ${fmt(th.lrOverBound)}x the stability bound ${fmt(th.stableLr)} `
      + `(2${run.controls.optimizer === "momentum" ? "(1+μ)" : ""}/λmax of ${th.boundOf}): the error along the top `
      + `eigenvector ${how} every epoch, so the loss cannot reach its optimum at this lr (${run.outcome} `
      + `at ${fmt(run.finalLoss)}).`;
    return { verdict: "unstable", message: msg, advice };
  }

  function causesAboveTol(th, rules) { // diagnose._causes_above_tol: a missing bias, else noise or nonlinearity
    const tips = [];
    if (th.withBias !== null && th.withBias < INTERCEPT_GAIN * th.lsLoss) {
      tips.push(`The model has no bias: the best fit without one leaves L* = ${fmt(th.lsLoss)}, `
        + `with one L* = ${fmt(th.withBias)}. ${ADD_A_BIAS}`);
    }
    if (th.withBias === null || th.withBias > rules.tol) {
      tips.push(`L*${tips.length ? " with a bias" : ""} is above tol=${fmt(rules.tol)}: no linear model fits `
        + "closer; the rest is noise or nonlinearity, so raise tol.");
    }
    return tips;
  }

  function atTarget(run, th, rules) {
    const f = th.floor, tol = rules.tol;
    if (f && (near(run, f.loss, rules) || run.outcome === "converged")) {
      const advice = [`Make every hidden layer at least ${f.fittedRank} wide to reach L* = ${fmt(f.lsLoss)}.`];
      const why = `the narrowest hidden width ${f.width} is below the rank ${f.fittedRank} of the `
        + `fitted values Ŷ, so the rank-${f.width} floor ${fmt(f.loss)} (${fmt(100 * f.share, 3)}% of ‖Y‖²)`;
      if (run.outcome === "converged") {
        return { verdict: "converged_floor", message: `loss ${fmt(run.finalLoss)} met tol=${fmt(tol)}, but ${why} is the lowest this width reaches.`, advice };
      }
      return { verdict: "stalled_floor", message: `loss ${fmt(run.finalLoss)} is at the floor: ${why} is as low as any lr or epoch count goes.`, advice };
    }
    if (!f && near(run, th.lsLoss, rules)) {
      const gap = run.finalLoss - th.lsLoss, size = Math.abs(gap);
      const where = size <= tol ? `within tol=${fmt(tol)} of`
        : `${fmt(size, 3)} (${fmt(size / Math.abs(th.lsLoss), 2)} relative) ${gap < 0 ? "below" : "above"}`;
      const advice = th.lsLoss <= tol ? [] : causesAboveTol(th, rules);
      return { verdict: "converged_optimum", message: `loss ${fmt(run.finalLoss)} is ${where} ${OPTIMUM} ${fmt(th.lsLoss)}.`, advice };
    }
    if (run.outcome === "converged") return { verdict: "converged_optimum", message: `loss ${fmt(run.finalLoss)} <= tol=${fmt(tol)}.`, advice: [] };
    return null;
  }

  function saddle(run, stats) {
    if (run.controls.depth === 1) return null;
    const prob = C.problem(stats, run.controls.reduction), G = C.gradP(prob, C.lossAt(prob, run.W));
    const gFactors = Math.sqrt(C.factorGradients(run.factors, G).reduce((s, g) => s + C.norm2(g), 0));
    const gEnd = Math.sqrt(C.norm2(G));
    if (!(gFactors <= SADDLE_RTOL * gEnd)) return null;
    return { verdict: "saddle", message: `the factors sit at a saddle: the gradient is ${fmt(gFactors, 3)} while the end-to-end `
      + `product still has gradient ${fmt(gEnd, 3)}; with all-zero factors no update ever moves.`,
    advice: ["Start away from zero: init='scaled' (e.g. init_scale=0.1), 'balanced' or 'orthogonal'."] };
  }

  function forecast(run, stats, lr, rules) { // diagnose._forecast: theory.epochs_to_tol from the final W
    const c = run.controls;
    if (c.depth > 1 || c.optimizer === "momentum") return null; // plain GD's forecast (Adam too, as linlab)
    const prob = C.problem(stats, c.reduction), E = C.lossAt(prob, run.W).Z; // Vᵀ(W − W*)
    const lam = [], weight = [];
    for (let i = 0; i < stats.d; i++) {
      const h = 2 * stats.lam[i] / prob.entries; // Hessian eigenvalue 2sμ_i
      if (!(h > 0)) continue;
      let row = 0;
      for (let j = 0; j < stats.k; j++) row += E.a[i * stats.k + j] ** 2;
      lam.push(h); weight.push(0.5 * h * row);
    }
    const floor = stats.floors[c.reduction].ls_loss, tol = rules.tol;
    const f = (t) => floor + weight.reduce((s, w, i) => s + w * Math.pow(1 - lr * lam[i], 2 * t), 0);
    if (f(0) <= tol) return 0;
    const active = weight.map((w) => w > 0);
    if (tol <= floor || !active.some(Boolean)) return null;
    let lo = 0, hi = 1e12;
    const shrink = Math.max(...lam.filter((_, i) => active[i]).map((l) => (1 - lr * l) ** 2));
    if (shrink > 1) {
      while (hi - lo > 1) { const mid = Math.floor((lo + hi) / 2); if (f(mid + 1) < f(mid)) lo = mid; else hi = mid; }
    } else if (shrink > 0 && shrink < 1) {
      hi = Math.min(hi, Math.ceil(Math.log((tol - floor) / (f(0) - floor)) / Math.log(shrink)) + 1);
    }
    if (f(hi) > tol) return null;
    lo = 0;
    while (hi - lo > 1) { const mid = Math.floor((lo + hi) / 2); if (f(mid) <= tol) hi = mid; else lo = mid; }
    return hi;
  }

  function slowCauses(th) { // diagnose._slow_causes: conditioning, a missing bias, a floor
    const tips = [], kappa = th.kappa, scaled = th.kappaScaled;
    if (kappa !== null && kappa > COND_WARN) {
      let how = "";
      if (scaled !== null && scaled < kappa / 10) {
        how = `standardize the features (--standardize): columns of mean 0 and std 1 bring κ to ${fmt(scaled, 3)}`;
      } else if (scaled !== null) {
        how = `standardizing leaves κ at ${fmt(scaled, 3)}, so correlated columns cause it: drop or combine them, or `
          + "use momentum (its rate is (√κ−1)/(√κ+1))";
      }
      tips.push(`XᵀX has condition number κ = ${fmt(kappa, 3)}: even at the best lr the slowest direction's `
        + `error shrinks only by (κ−1)/(κ+1) per epoch, about κ/2 = ${fmt(kappa / 2, 3)} epochs per e-fold`
        + `${how ? "; " + how : ""}.`);
    }
    if (th.withBias !== null && th.withBias < INTERCEPT_GAIN * th.lsLoss) {
      tips.push(`The model has no bias: the best fit without one is L* = ${fmt(th.lsLoss)}, with one `
        + `${fmt(th.withBias)}. ${ADD_A_BIAS}`);
    }
    if (th.floor) {
      tips.push(`Even at the end this width cannot go below the rank-${th.floor.width} floor ${fmt(th.floor.loss)}; `
        + `hidden width ${th.floor.fittedRank} is needed.`);
    }
    return tips;
  }

  function slow(run, th, stats, rules) {
    const lr = run.controls.lr, causes = slowCauses(th);
    if (th.suggestedLr && lr < SLOW * th.suggestedLr) { // diagnose._too_slow
      const now = forecast(run, stats, lr, rules), better = forecast(run, stats, th.suggestedLr, rules);
      const msg = `lr=${fmt(lr, 3)} is ${fmt(th.suggestedLr / lr, 3)}x below the recommended `
        + `${fmt(th.suggestedLr, 3)}; the loss is ${fmt(run.finalLoss)} after ${run.epochs} epochs.`;
      let tip = `Use lr=${fmt(th.suggestedLr, 3)} (or lr="auto")`;
      if (better !== null) tip += `: tol is then ${better} more epochs away, against ${now === null ? "None" : now} at the current lr`;
      return { verdict: "too_slow", message: msg, advice: [tip + "."].concat(causes) };
    }
    const h = run.history, recent = h.slice(h.length - Math.min(h.length, rules.stall_window));
    if (run.outcome === "max_epochs" && recent[0] - recent[recent.length - 1] > rules.stall_rtol * recent[0]) {
      const more = forecast(run, stats, lr, rules);
      return { verdict: "still_improving", message: `the epoch limit ${run.epochs} came while the loss (${fmt(run.finalLoss)}) was still falling.`,
        advice: causes.concat([more !== null ? `Run ${more} more epochs to reach tol.` : "Run more epochs."]) };
    }
    const tip = th.stableLr && lr < SLOW * th.stableLr
      ? `Try another init or optimizer, or a larger lr below the bound ${fmt(th.stableLr, 3)}.` : "Try another init or optimizer.";
    return { verdict: "stalled_other", message: `the loss stopped improving at ${fmt(run.finalLoss)} (${run.outcome}), `
      + `above ${OPTIMUM} ${fmt(th.lsLoss)}.`, advice: causes.concat([tip]) };
  }

  function diagnose(run, stats, rules) {
    const th = theory(run, stats, rules);
    const found = diverged(run, th) || atTarget(run, th, rules) || unstable(run, th) || saddle(run, stats)
      || slow(run, th, stats, rules);
    return { ...found, word: WORDS[found.verdict], stableLr: th.stableLr, suggestedLr: th.suggestedLr };
  }

  return { fmt, train, diagnose, WORDS };
})();

if (typeof module !== "undefined") module.exports = LinlabRules;
