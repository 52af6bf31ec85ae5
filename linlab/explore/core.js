/* linlab explorer: the numerics. Gradient descent on a deep linear network
 * predictions = X·W1·W2·…·WL from the statistics of the data alone, in float64.
 *
 * The loss is linlab's exact decomposition (linlab/engines/batched_stats.py): with
 * A = XᵀX = VΛVᵀ, P₀ the least-squares W, Δ = P − P₀, r = AP₀ − XᵀY, L* = ‖XP₀ − Y‖²,
 *     ‖XP − Y‖² = Σ_i λ_i ‖(VᵀΔ)_i‖² + 2tr(Δᵀr) + L*,   ∂/∂P = 2(VΛVᵀΔ + r),
 * times 1/(n·k) for the mean reduction. The factors stay in the data's basis, and the
 * updates are linlab/optim.py's (torch.optim's algorithms) line by line, so the page
 * follows linlab.train from the same initial factors. */
"use strict";

const LinlabCore = (function () {
  // ---- matrices: {rows, cols, a: Float64Array}, row-major ----
  function mat(rows, cols, a) {
    return { rows, cols, a: a || new Float64Array(rows * cols) };
  }
  function fromNested(x) {
    const rows = x.length, cols = rows ? x[0].length : 0, M = mat(rows, cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) M.a[i * cols + j] = x[i][j];
    return M;
  }
  function toNested(M) {
    const out = [];
    for (let i = 0; i < M.rows; i++) out.push(Array.from(M.a.subarray(i * M.cols, (i + 1) * M.cols)));
    return out;
  }
  function copy(M) {
    return mat(M.rows, M.cols, Float64Array.from(M.a));
  }
  function identity(n) {
    const M = mat(n, n);
    for (let i = 0; i < n; i++) M.a[i * n + i] = 1;
    return M;
  }
  function matmul(A, B, into) { // A·B, (m, n)·(n, p), into a given (m, p) matrix or a new one
    const m = A.rows, n = A.cols, p = B.cols, a = A.a, b = B.a;
    const out = into ? into.a.fill(0) : new Float64Array(m * p);
    for (let i = 0; i < m; i++) {
      for (let t = 0; t < n; t++) {
        const x = a[i * n + t];
        for (let j = 0; j < p; j++) out[i * p + j] += x * b[t * p + j];
      }
    }
    return into || mat(m, p, out);
  }
  function tmatmul(A, B, into) { // Aᵀ·B, (n, m)ᵀ·(n, p)
    const n = A.rows, m = A.cols, p = B.cols, a = A.a, b = B.a;
    const out = into ? into.a.fill(0) : new Float64Array(m * p);
    for (let t = 0; t < n; t++) {
      for (let i = 0; i < m; i++) {
        const x = a[t * m + i];
        for (let j = 0; j < p; j++) out[i * p + j] += x * b[t * p + j];
      }
    }
    return into || mat(m, p, out);
  }
  function matmult(A, B, into) { // A·Bᵀ, (m, n)·(p, n)ᵀ
    const m = A.rows, n = A.cols, p = B.rows, a = A.a, b = B.a;
    const out = into ? into.a : new Float64Array(m * p);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < p; j++) {
        let s = 0;
        for (let t = 0; t < n; t++) s += a[i * n + t] * b[j * n + t];
        out[i * p + j] = s;
      }
    }
    return into || mat(m, p, out);
  }
  function transpose(A) {
    const T = mat(A.cols, A.rows);
    for (let i = 0; i < A.rows; i++) for (let j = 0; j < A.cols; j++) T.a[j * A.rows + i] = A.a[i * A.cols + j];
    return T;
  }
  function add(A, B, scale) { // A + scale·B, new matrix
    const out = new Float64Array(A.a.length);
    for (let i = 0; i < out.length; i++) out[i] = A.a[i] + scale * B.a[i];
    return mat(A.rows, A.cols, out);
  }
  function norm2(A) {
    let s = 0;
    for (let i = 0; i < A.a.length; i++) s += A.a[i] * A.a[i];
    return s;
  }
  function product(Ws) { // W1·W2·…·WL
    let P = Ws[0];
    for (let j = 1; j < Ws.length; j++) P = matmul(P, Ws[j]);
    return P;
  }

  // ---- symmetric eigenproblems (cyclic Jacobi): small k×k Gram matrices and Lanczos' T ----
  function symEig(S) { // S symmetric n×n: {values (descending), vectors (columns, n×n)}
    const n = S.rows, a = Float64Array.from(S.a), v = identity(n).a;
    let scale = 0;
    for (let i = 0; i < n * n; i++) scale += a[i] * a[i];
    for (let sweep = 0; sweep < 50; sweep++) {
      let off = 0;
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] * a[i * n + j];
      if (!(off > 1e-28 * scale)) break; // converged to rounding
      for (let p = 0; p < n; p++) {
        for (let q = p + 1; q < n; q++) {
          const apq = a[p * n + q];
          if (apq === 0) continue;
          const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
          const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
          const c = 1 / Math.sqrt(t * t + 1), s = t * c;
          for (let k = 0; k < n; k++) { // columns p, q
            const akp = a[k * n + p], akq = a[k * n + q];
            a[k * n + p] = c * akp - s * akq;
            a[k * n + q] = s * akp + c * akq;
          }
          for (let k = 0; k < n; k++) { // rows p, q
            const apk = a[p * n + k], aqk = a[q * n + k];
            a[p * n + k] = c * apk - s * aqk;
            a[q * n + k] = s * apk + c * aqk;
          }
          for (let k = 0; k < n; k++) {
            const vkp = v[k * n + p], vkq = v[k * n + q];
            v[k * n + p] = c * vkp - s * vkq;
            v[k * n + q] = s * vkp + c * vkq;
          }
        }
      }
    }
    const order = [...Array(n).keys()].sort((i, j) => a[j * n + j] - a[i * n + i]);
    const vectors = mat(n, n);
    order.forEach((src, dst) => { for (let k = 0; k < n; k++) vectors.a[k * n + dst] = v[k * n + src]; });
    return { values: order.map((i) => a[i * n + i]), vectors };
  }
  function singularValues(P) { // of a (d, k) matrix, descending, from its smaller Gram matrix
    const G = P.cols <= P.rows ? tmatmul(P, P) : matmult(P, P);
    return symEig(G).values.map((x) => Math.sqrt(Math.max(x, 0)));
  }
  function svd(M) { // thin SVD of a full-rank (m, n) matrix, m >= n: U (m, n), s, V (n, n)
    const { values, vectors } = symEig(tmatmul(M, M)), s = values.map((x) => Math.sqrt(Math.max(x, 0)));
    const U = matmul(M, vectors);
    for (let i = 0; i < U.rows; i++) for (let j = 0; j < U.cols; j++) U.a[i * U.cols + j] /= s[j] || 1;
    return { U, s, V: vectors };
  }

  // ---- a seeded generator (sfc32, seeded by splitmix32) and normal draws (Box-Muller) ----
  function rng(seed) {
    let z = seed >>> 0;
    const mix = () => {
      z = (z + 0x9e3779b9) >>> 0;
      let x = z;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      return (x ^ (x >>> 16)) >>> 0;
    };
    let a = mix(), b = mix(), c = mix(), d = mix();
    const next = () => {
      const t = (((a + b) >>> 0) + d) >>> 0;
      d = (d + 1) >>> 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) >>> 0;
      c = ((c << 21) | (c >>> 11)) >>> 0;
      c = (c + t) >>> 0;
      return t;
    };
    for (let i = 0; i < 12; i++) next();
    const uniform = () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992; // [0, 1), 53 bits
    const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    return { uniform, normal };
  }
  function gaussian(g, rows, cols, scale) {
    const M = mat(rows, cols);
    for (let i = 0; i < M.a.length; i++) M.a[i] = scale * g.normal();
    return M;
  }
  function orthogonal(g, rows, cols) { // (semi-)orthogonal: Gram-Schmidt of a Gaussian matrix (Haar)
    const tall = rows >= cols, m = Math.max(rows, cols), n = Math.min(rows, cols), Q = gaussian(g, m, n, 1);
    for (let j = 0; j < n; j++) {
      for (let pass = 0; pass < 2; pass++) { // twice is enough (Giraud et al. 2005)
        for (let i = 0; i < j; i++) {
          let dot = 0;
          for (let t = 0; t < m; t++) dot += Q.a[t * n + i] * Q.a[t * n + j];
          for (let t = 0; t < m; t++) Q.a[t * n + j] -= dot * Q.a[t * n + i];
        }
      }
      let s = 0;
      for (let t = 0; t < m; t++) s += Q.a[t * n + j] * Q.a[t * n + j];
      s = Math.sqrt(s);
      for (let t = 0; t < m; t++) Q.a[t * n + j] /= s;
    }
    return tall ? Q : transpose(Q);
  }
  function balanced(g, widths, scale) {
    // linlab.models._balanced: M = UΣVᵀ with N(0, scale²) entries, Σ split evenly over the
    // L factors through orthonormal Q_j, so that Wjᵀ Wj = W_{j+1} W_{j+1}ᵀ
    const L = widths.length - 1, d = widths[0], k = widths[L], r = Math.min(...widths);
    const M = gaussian(g, d, k, scale), tall = d >= k, f = svd(tall ? M : transpose(M));
    const U = tall ? f.U : f.V, V = tall ? f.V : f.U; // M = U diag(s) Vᵀ
    const first = (Q, cols) => { const out = mat(Q.rows, cols); for (let i = 0; i < Q.rows; i++) for (let j = 0; j < cols; j++) out.a[i * cols + j] = Q.a[i * Q.cols + j]; return out; };
    const Qs = [first(U, r)];
    for (let j = 1; j < L; j++) Qs.push(orthogonal(g, widths[j], r));
    Qs.push(first(V, r));
    const root = f.s.slice(0, r).map((x) => Math.pow(x, 1 / L));
    const Ws = [];
    for (let j = 0; j < L; j++) {
      const scaled = copy(Qs[j]);
      for (let i = 0; i < scaled.rows; i++) for (let c = 0; c < r; c++) scaled.a[i * r + c] *= root[c];
      Ws.push(matmult(scaled, Qs[j + 1]));
    }
    return Ws;
  }
  function initFactors(widths, init, scale, seed) {
    const g = rng(seed), shapes = widths.slice(0, -1).map((w, j) => [w, widths[j + 1]]);
    if (init === "balanced") return balanced(g, widths, scale);
    if (init === "orthogonal") return shapes.map(([a, b]) => { const Q = orthogonal(g, a, b); Q.a.forEach((x, i) => { Q.a[i] = scale * x; }); return Q; });
    return shapes.map(([a, b]) => gaussian(g, a, b, scale)); // normal: N(0, scale²) entries
  }

  // ---- the problem: loss, gradient and Hessian-vector products from the statistics ----
  function problem(stats, reduction) {
    return {
      d: stats.d, k: stats.k, lam: Float64Array.from(stats.lam), V: fromNested(stats.V),
      P0: fromNested(stats.P_ls), r: fromNested(stats.r), Lstar: stats.L_star,
      entries: reduction === "mean" ? stats.n * stats.k : 1, // the mean divides by n·k
    };
  }
  function applyA(prob, M) { // A·M = V(Λ(VᵀM))
    const Z = tmatmul(prob.V, M);
    for (let i = 0; i < Z.rows; i++) for (let j = 0; j < Z.cols; j++) Z.a[i * Z.cols + j] *= prob.lam[i];
    return matmul(prob.V, Z);
  }
  function lossAt(prob, P) { // the loss of the end-to-end P, and ∂loss/∂P when asked
    const D = add(P, prob.P0, -1), Z = tmatmul(prob.V, D), k = prob.k;
    let quad = 0, cross = 0;
    for (let i = 0; i < Z.rows; i++) {
      let row = 0;
      for (let j = 0; j < k; j++) row += Z.a[i * k + j] * Z.a[i * k + j];
      quad += prob.lam[i] * row;
    }
    for (let i = 0; i < D.a.length; i++) cross += D.a[i] * prob.r.a[i];
    return { loss: (quad + 2 * cross + prob.Lstar) / prob.entries, D, Z };
  }
  function gradP(prob, at) { // 2(VΛVᵀΔ + r)/entries
    const Z = copy(at.Z);
    for (let i = 0; i < Z.rows; i++) for (let j = 0; j < Z.cols; j++) Z.a[i * Z.cols + j] *= prob.lam[i];
    const G = matmul(prob.V, Z);
    for (let i = 0; i < G.a.length; i++) G.a[i] = 2 * (G.a[i] + prob.r.a[i]) / prob.entries;
    return G;
  }
  function sandwich(pre, M, suf) { // preᵀ·M·sufᵀ, with null for an identity
    const left = pre ? tmatmul(pre, M) : M;
    return suf ? matmult(left, suf) : left;
  }
  function prefixes(Ws) { // pre[j] = W1⋯W_{j} (pre[0] = null: the identity), j = 0..L
    const pre = [null];
    for (let j = 0; j < Ws.length; j++) pre.push(pre[j] ? matmul(pre[j], Ws[j]) : Ws[j]);
    return pre;
  }
  function suffixes(Ws) { // suf[j] = W_{j+2}⋯W_L, the factors after W_{j+1} (null: identity)
    const L = Ws.length, suf = new Array(L).fill(null);
    for (let j = L - 2; j >= 0; j--) suf[j] = suf[j + 1] ? matmul(Ws[j + 1], suf[j + 1]) : Ws[j + 1];
    return suf;
  }
  function factorGradients(Ws, G) { // ∂ℓ/∂Wj = (W1⋯W_{j−1})ᵀ G (W_{j+1}⋯WL)ᵀ
    const pre = prefixes(Ws), suf = suffixes(Ws);
    return Ws.map((_, j) => sandwich(pre[j], G, suf[j]));
  }
  // ---- one epoch, into buffers allocated once per run (no garbage per epoch) ----
  // With k targets few, the chains of the gradient ∂ℓ/∂Wj = (W1⋯W_{j−1})ᵀ G (W_{j+1}⋯WL)ᵀ are
  // products with k vectors: an epoch costs O(L·h²·k), not the O(L·d·h²) of the prefixes W1⋯Wj.
  // They are kept as k rows (k, w). Each entry is a sum over t in ascending order, as in matmul;
  // four entries are summed side by side (independent additions, which the processor overlaps).
  // Both take X's rows two at a time, so each entry of A read serves two sums.
  function rowsTimesT(out, x, k, n, a, m) { // out (k, m) = X (k, n) · Aᵀ, A (m, n): X's rows through A
    for (let c = 0; c < k; c += 2) {
      const two = c + 1 < k, x0 = c * n, x1 = two ? x0 + n : x0, o0 = c * m, o1 = two ? o0 + m : o0;
      let i = 0;
      for (; i + 1 < m; i += 2) {
        const a0 = i * n, a1 = a0 + n;
        let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
        for (let t = 0; t < n; t++) {
          const u = x[x0 + t], v = x[x1 + t], p = a[a0 + t], q = a[a1 + t];
          s00 += u * p; s01 += u * q; s10 += v * p; s11 += v * q;
        }
        out[o0 + i] = s00; out[o0 + i + 1] = s01;
        if (two) { out[o1 + i] = s10; out[o1 + i + 1] = s11; }
      }
      for (; i < m; i++) {
        let s0 = 0, s1 = 0;
        for (let t = 0; t < n; t++) { s0 += x[x0 + t] * a[i * n + t]; s1 += x[x1 + t] * a[i * n + t]; }
        out[o0 + i] = s0;
        if (two) out[o1 + i] = s1;
      }
    }
  }
  function rowsTimes(out, x, k, n, a, m) { // out (k, m) = X (k, n) · A, A (n, m)
    for (let c = 0; c < k; c += 2) {
      const two = c + 1 < k, x0 = c * n, x1 = two ? x0 + n : x0, o0 = c * m, o1 = two ? o0 + m : o0;
      let i = 0;
      for (; i + 1 < m; i += 2) {
        let s00 = 0, s01 = 0, s10 = 0, s11 = 0;
        for (let t = 0; t < n; t++) {
          const u = x[x0 + t], v = x[x1 + t], r = t * m + i, p = a[r], q = a[r + 1];
          s00 += u * p; s01 += u * q; s10 += v * p; s11 += v * q;
        }
        out[o0 + i] = s00; out[o0 + i + 1] = s01;
        if (two) { out[o1 + i] = s10; out[o1 + i + 1] = s11; }
      }
      for (; i < m; i++) {
        let s0 = 0, s1 = 0;
        for (let t = 0; t < n; t++) { s0 += x[x0 + t] * a[t * m + i]; s1 += x[x1 + t] * a[t * m + i]; }
        out[o0 + i] = s0;
        if (two) out[o1 + i] = s1;
      }
    }
  }
  function outerSum(out, x, m, y, n, k) { // out (m, n) = Xᵀ·Y = Σ_c x_c y_cᵀ, X (k, m), Y (k, n)
    for (let i = 0; i < m; i++) {
      const v0 = x[i], v1 = k > 1 ? x[m + i] : 0, o = i * n;
      if (k > 1) for (let j = 0; j < n; j++) out[o + j] = v0 * y[j] + v1 * y[n + j]; // 0 + a + b = a + b
      else for (let j = 0; j < n; j++) out[o + j] = v0 * y[j];
    }
    for (let c = 2; c < k; c++) {
      for (let i = 0; i < m; i++) {
        const v = x[c * m + i], o = i * n, r = c * n;
        for (let j = 0; j < n; j++) out[o + j] += v * y[r + j];
      }
    }
  }
  function transposeInto(out, a, m, n) { // out (n, m) = Aᵀ, A (m, n)
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j];
  }
  function workspace(prob, widths) {
    // right[j] = (W_{j+1}⋯WL)ᵀ, (k, w_j), so right[0] = Pᵀ and right[L] = I; left[j] = ((W1⋯Wj)ᵀ G)ᵀ,
    // (k, w_j). The gradient ∂ℓ/∂W_{j+1} = left[j]ᵀ·right[j+1] is left as these two factors
    // (ws.grad): the optimizer forms its entries as it applies them.
    const L = widths.length - 1, d = widths[0], k = widths[L], rows = () => widths.slice(0, L).map((w) => new Float64Array(k * w));
    const right = [...rows(), identity(k).a], left = rows();
    return {
      widths, right, left, P: mat(d, k), D: new Float64Array(d * k), Z: new Float64Array(d * k), Vt: transpose(prob.V).a,
      grad: { k, factors: left.map((x, j) => [x, widths[j], right[j + 1], widths[j + 1]]) },
    };
  }
  function epoch(prob, Ws, ws) { // → the loss at Ws; ws.P holds W1⋯WL, ws.grad gives ∂ℓ/∂Wj
    const L = Ws.length, w = ws.widths, d = prob.d, k = prob.k, lam = prob.lam;
    const { right, left, D, Z, Vt } = ws, P = ws.P.a, P0 = prob.P0.a, r = prob.r.a, V = prob.V.a;
    transposeInto(right[L - 1], Ws[L - 1].a, w[L - 1], k);
    for (let j = L - 2; j >= 0; j--) rowsTimesT(right[j], right[j + 1], k, w[j + 1], Ws[j].a, w[j]);
    transposeInto(P, right[0], k, d);
    for (let i = 0; i < D.length; i++) D[i] = P[i] - P0[i];
    let quad = 0, cross = 0;
    for (let i = 0; i < d; i++) { // Z = VᵀΔ, the loss, then Z ← ΛVᵀΔ
      let row = 0;
      for (let j = 0; j < k; j++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += Vt[i * d + t] * D[t * k + j];
        Z[i * k + j] = s;
        row += s * s;
      }
      quad += lam[i] * row;
      for (let j = 0; j < k; j++) Z[i * k + j] *= lam[i];
    }
    for (let i = 0; i < D.length; i++) cross += D[i] * r[i];
    const loss = (quad + 2 * cross + prob.Lstar) / prob.entries, G = left[0];
    for (let i = 0; i < d; i++) { // left[0] = Gᵀ, G = 2(VΛVᵀΔ + r)/entries
      for (let j = 0; j < k; j++) {
        let s = 0;
        for (let t = 0; t < d; t++) s += V[i * d + t] * Z[t * k + j];
        G[j * d + i] = 2 * (s + r[i * k + j]) / prob.entries;
      }
    }
    for (let j = 1; j < L; j++) rowsTimes(left[j], left[j - 1], k, w[j - 1], Ws[j - 1].a, w[j]);
    return loss;
  }

  function hessianVector(prob, Ws, Ds) { // d(∇ℓ) along the direction Ds (forward mode)
    const L = Ws.length, pre = [null], dpre = [null];
    for (let j = 0; j < L; j++) {
      pre.push(pre[j] ? matmul(pre[j], Ws[j]) : Ws[j]);
      const a = dpre[j] ? matmul(dpre[j], Ws[j]) : null, b = pre[j] ? matmul(pre[j], Ds[j]) : Ds[j];
      dpre.push(a ? add(a, b, 1) : b);
    }
    const suf = new Array(L).fill(null), dsuf = new Array(L).fill(null);
    for (let j = L - 2; j >= 0; j--) {
      suf[j] = suf[j + 1] ? matmul(Ws[j + 1], suf[j + 1]) : Ws[j + 1];
      const a = suf[j + 1] ? matmul(Ds[j + 1], suf[j + 1]) : Ds[j + 1];
      dsuf[j] = dsuf[j + 1] ? add(a, matmul(Ws[j + 1], dsuf[j + 1]), 1) : a;
    }
    const G = gradP(prob, lossAt(prob, pre[L])), dG = applyA(prob, dpre[L]);
    dG.a.forEach((x, i) => { dG.a[i] = 2 * x / prob.entries; });
    return Ws.map((_, j) => {
      let out = sandwich(pre[j], dG, suf[j]);
      if (dpre[j]) out = add(out, sandwich(dpre[j], G, suf[j]), 1);
      if (dsuf[j]) out = add(out, sandwich(pre[j], G, dsuf[j]), 1);
      return out;
    });
  }
  function sharpness(prob, Ws, steps) { // λmax(∇²ℓ): Lanczos, full reorthogonalisation
    const size = Ws.reduce((s, W) => s + W.a.length, 0), m = Math.min(size, steps || 80);
    const split = (x) => { let o = 0; return Ws.map((W) => { const M = mat(W.rows, W.cols, x.slice(o, o + W.a.length)); o += W.a.length; return M; }); };
    const flat = (Ms) => { const x = new Float64Array(size); let o = 0; Ms.forEach((M) => { x.set(M.a, o); o += M.a.length; }); return x; };
    const dot = (x, y) => { let s = 0; for (let i = 0; i < x.length; i++) s += x[i] * y[i]; return s; };
    const g = rng(12345), Q = [], alpha = [], beta = [];
    let q = Float64Array.from({ length: size }, () => g.normal());
    let nq = Math.sqrt(dot(q, q)), last = NaN;
    q = q.map((x) => x / nq);
    for (let j = 0; j < m; j++) {
      Q.push(q);
      const w = flat(hessianVector(prob, Ws, split(q)));
      alpha.push(dot(w, q));
      for (let pass = 0; pass < 2; pass++) for (const u of Q) { const c = dot(w, u); for (let i = 0; i < size; i++) w[i] -= c * u[i]; }
      nq = Math.sqrt(dot(w, w));
      const ritz = topTridiagonal(alpha, beta); // the top Ritz value: stop once it has settled
      if (j >= 4 && Math.abs(ritz - last) <= 1e-12 * Math.abs(ritz)) break;
      last = ritz;
      if (!(nq > 1e-12 * Math.abs(alpha[0] || 1)) || j === m - 1) break;
      beta.push(nq);
      q = w.map((x) => x / nq);
    }
    return topTridiagonal(alpha, beta.slice(0, alpha.length - 1));
  }
  function topTridiagonal(alpha, beta) { // the largest eigenvalue of tridiag(β, α, β): Sturm bisection
    const n = alpha.length, radius = alpha.map((a, i) => Math.abs(beta[i - 1] || 0) + Math.abs(beta[i] || 0));
    let lo = Math.min(...alpha.map((a, i) => a - radius[i])), hi = Math.max(...alpha.map((a, i) => a + radius[i]));
    const above = (x) => { // eigenvalues > x: sign changes of the LDLᵀ pivots of T − x
      let count = 0, q = 1;
      for (let i = 0; i < n; i++) {
        q = alpha[i] - x - (i ? (beta[i - 1] * beta[i - 1]) / q : 0);
        if (q === 0) q = -1e-300;
        if (q > 0) count += 1;
      }
      return count;
    };
    for (let it = 0; it < 200 && hi - lo > 1e-15 * Math.max(Math.abs(lo), Math.abs(hi)); it++) {
      const mid = 0.5 * (lo + hi);
      if (above(mid) > 0) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
  }

  // ---- optimizers: linlab/optim.py (torch.optim's algorithms) ----
  // step(lr, grad): grad.factors[j] = [X, m, Y, n], ∂ℓ/∂Wj = XᵀY with X (k, m), Y (k, n). Each update
  // is a flat loop with its numbers in locals; for k ≤ 2 (one or two targets) SGD and momentum
  // form each gradient entry as they apply it, else (and Adam) the gradient is made first.
  function sgdStep(p, g, lr) {
    for (let i = 0; i < p.length; i++) p[i] -= lr * g[i];
  }
  function momentumStep(p, g, b, mu, lr) { // heavy ball: b ← μb + g, p ← p − lr·b
    for (let i = 0; i < p.length; i++) { // torch's first buffer is the gradient itself: μ·0 + g
      const v = b[i] * mu + g[i];
      b[i] = v;
      p[i] -= lr * v;
    }
  }
  function momentumOuter(p, b, x, m, y, n, k, mu, lr) { // momentumStep with g = XᵀY made in place, k ≤ 2
    for (let i = 0; i < m; i++) {
      const v0 = x[i], v1 = x[(k - 1) * m + i], o = i * n, y1 = (k - 1) * n;
      if (k === 1) {
        for (let j = 0; j < n; j++) { const v = b[o + j] * mu + v0 * y[j]; b[o + j] = v; p[o + j] -= lr * v; }
      } else {
        for (let j = 0; j < n; j++) { const v = b[o + j] * mu + (v0 * y[j] + v1 * y[y1 + j]); b[o + j] = v; p[o + j] -= lr * v; }
      }
    }
  }
  function sgdOuter(p, x, m, y, n, k, lr) { // sgdStep with g = XᵀY made in place, k ≤ 2
    for (let i = 0; i < m; i++) {
      const v0 = x[i], v1 = x[(k - 1) * m + i], o = i * n, y1 = (k - 1) * n;
      if (k === 1) for (let j = 0; j < n; j++) p[o + j] -= lr * (v0 * y[j]);
      else for (let j = 0; j < n; j++) p[o + j] -= lr * (v0 * y[j] + v1 * y[y1 + j]);
    }
  }
  function adamStep(p, g, m, v, b1, b2, eps, c1, c2, lr) {
    for (let i = 0; i < p.length; i++) {
      m[i] = m[i] * b1 + (1 - b1) * g[i];
      v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
      const denom = Math.pow(v[i], 0.5) / c2 + eps;
      p[i] -= (lr / c1) * m[i] / denom;
    }
  }
  function optimizer(name, Ws, settings) {
    const L = Ws.length, zeros = () => Ws.map((W) => new Float64Array(W.a.length)), g = zeros();
    const gradient = (grad, j) => { const [x, m, y, n] = grad.factors[j]; outerSum(g[j], x, m, y, n, grad.k); return g[j]; };
    if (name === "adam") {
      const [b1, b2] = settings.betas, eps = settings.eps, m = zeros(), v = zeros();
      let t = 0;
      return (lr, grad) => {
        t += 1;
        const c1 = 1 - Math.pow(b1, t), c2 = Math.pow(1 - Math.pow(b2, t), 0.5);
        for (let j = 0; j < L; j++) adamStep(Ws[j].a, gradient(grad, j), m[j], v[j], b1, b2, eps, c1, c2, lr);
      };
    }
    const mu = name === "momentum" ? settings.momentum : 0, bufs = mu ? zeros() : null;
    return (lr, grad) => {
      for (let j = 0; j < L; j++) {
        const [x, m, y, n] = grad.factors[j], k = grad.k;
        if (k <= 2 && mu) momentumOuter(Ws[j].a, bufs[j], x, m, y, n, k, mu, lr);
        else if (k <= 2) sgdOuter(Ws[j].a, x, m, y, n, k, lr);
        else if (mu) momentumStep(Ws[j].a, gradient(grad, j), bufs[j], mu, lr);
        else sgdStep(Ws[j].a, gradient(grad, j), lr);
      }
    };
  }

  function widthsOf(stats, depth, width) {
    return [stats.d, ...Array(depth - 1).fill(width), stats.k];
  }

  return {
    mat, fromNested, toNested, copy, matmul, tmatmul, matmult, product, norm2, symEig, singularValues,
    rng, initFactors, problem, lossAt, gradP, workspace, epoch, factorGradients, hessianVector, sharpness, optimizer, widthsOf,
  };
})();

if (typeof module !== "undefined") module.exports = LinlabCore;
