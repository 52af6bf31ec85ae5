/* Stacked SGD epochs with the stop rules, in C: linlab.engines.batched.kernels.native builds and loads it.
 *
 * The same epochs as kernels/fused.py's sgd_block (read that docstring first): factors
 * W_j of shape (H_{j-1}, H_j, B) with the run index last, the first layer in the eigenbasis of
 * A = XᵀX, plain SGD with optional momentum, Nesterov and weight decay, and fit's stop rules
 * per run and per epoch. Runs go LANES at a time: a lane block's factors are copied into
 * small contiguous buffers of vectors (one vector holds one entry of LANES runs), which stay
 * in the L1/L2 cache for all K epochs of the call (32 lanes: a product's accumulator is four
 * independent vector chains, not one latency-bound one); every product of the runs' tiny matrices is
 * then a few vector operations per entry, and the results are copied back. One call does
 * the lane blocks [b0, b1); the caller runs disjoint ranges on several threads.
 *
 * real is double, or float with -DSINGLE (one library each); losses and the stop rules are
 * in double. Built without -ffast-math, so NaN and inf behave as in torch.
 */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#ifdef SINGLE
typedef float real;
typedef int32_t mask_t;
#else
typedef double real;
typedef int64_t mask_t;
#endif
#define LANES 32
#define MAX_DEPTH 64
typedef real vec __attribute__((vector_size(LANES * sizeof(real)))); /* one entry of LANES runs */
typedef mask_t ivec __attribute__((vector_size(LANES * sizeof(real))));

typedef struct {
    int64_t L;             /* depth */
    const int64_t *H;      /* widths H_0 = d, ..., H_L = k (padded to the stack's widest) */
    int64_t B;             /* runs in the stack */
    real **W, **prev, **buf; /* per layer, (H_{j-1}, H_j, B); buf only with momentum */
    const real *P, *root, *slam, *sr, *r; /* (d, k): P0, sqrt(lambda), s*lambda, s*r, r */
    real floor_, divisor, mu, wd;
    int64_t K;             /* epochs in this call */
    const real *lrs;       /* (K, B) */
    uint8_t *alive;        /* (B,) */
    double *limit, *best;  /* (B,) */
    const double *pasts;   /* (K, B): best loss stall_window epochs back, NaN before */
    const double *factor, *tol, *rtol; /* (B,) */
    const int64_t *epochs; /* (B,) */
    int64_t t0;
    int64_t momentum, nesterov, decay;
    double *losses;        /* (K, B) out */
    int8_t *codes;         /* (K, B) out: 0 going on, 1 diverged, 2 converged, 3 max_epochs, 4 stalled */
} Block;

static inline vec splat(real x) { return (vec){0} + x; }

/* a where m is set, else b */
static inline vec select(ivec m, vec a, vec b) { return (vec)(((ivec)a & m) | ((ivec)b & ~m)); }

/* out (rows, cols) = X (rows, n) @ Y (n, cols) per lane, X and Y given by their strides in
 * entries (rx, nx) and (ny, cy): so one loop serves X Y, Xᵀ Y and X Yᵀ */
static void product(vec *restrict out, const vec *restrict X, int64_t rx, int64_t nx, const vec *restrict Y,
                    int64_t ny, int64_t cy, int64_t rows, int64_t n, int64_t cols) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            vec acc = {0};
            for (int64_t q = 0; q < n; q++) acc += X[i * rx + q * nx] * Y[q * ny + j * cy];
            out[i * cols + j] = acc;
        }
}

/* out (m, c) = X (m, a) @ Y (a, c) */
static void mm(vec *out, const vec *X, const vec *Y, int64_t m, int64_t a, int64_t c) {
    product(out, X, a, 1, Y, c, 1, m, a, c);
}

/* out (a, c) = X (m, a)ᵀ @ Y (m, c) */
static void tm(vec *out, const vec *X, const vec *Y, int64_t m, int64_t a, int64_t c) {
    product(out, X, 1, a, Y, c, 1, a, m, c);
}

/* out (m, a) = X (m, c) @ Y (a, c)ᵀ */
static void mt(vec *out, const vec *X, const vec *Y, int64_t m, int64_t a, int64_t c) {
    product(out, X, c, 1, Y, 1, c, m, c, a);
}

/* The SGD step of one layer (n entries), as sgd_block writes it: with weight decay
 * g += wd W; with momentum b = mu b + g and g = b (Nesterov: g + mu b); then W - lr g where the
 * run goes on, the previous W where it diverged, W where it stopped. */
static void step(const Block *s, vec *restrict w, vec *restrict p, vec *restrict b, const vec *restrict g,
                 int64_t n, ivec go, ivec dv, vec lr) {
    const vec mu = splat(s->mu), wd = splat(s->wd);
    for (int64_t e = 0; e < n; e++) {
        vec W = w[e], gl = g[e];
        if (s->decay) gl = gl + wd * W;
        if (s->momentum) {
            b[e] = select(go, mu * b[e] + gl, b[e]);
            gl = s->nesterov ? gl + mu * b[e] : b[e];
        }
        w[e] = select(go, W - lr * gl, select(dv, p[e], W));
        p[e] = W;
    }
}

/* fused.py's _judge for epoch t of one run: its stop code, 0 while it goes on */
static int judge(const Block *s, int64_t run, int64_t t, double loss, double past) {
    int alive = s->alive[run], first = t == 0;
    int diverged = alive && (first ? !isfinite(loss) : !(loss <= s->limit[run]));
    if (first) {
        double x = diverged ? 0.0 : loss;
        s->limit[run] = s->factor[run] * (x < 1e-300 ? 1e-300 : x);
    }
    int fine = alive && !diverged;
    if (fine) s->best[run] = first ? loss : fmin(s->best[run], loss);
    double best = s->best[run];
    int end = fine && s->epochs[run] == t;
    int converged = fine && !end && loss <= s->tol[run];
    int stalled = fine && !end && !converged && (past - best <= s->rtol[run] * past);
    s->alive[run] = fine && !end && !converged && !stalled;
    return diverged * 1 + converged * 2 + end * 3 + stalled * 4;
}

/* n entries of runs b .. b + m - 1 between the stack (run index last) and a lane buffer */
static void copy_in(vec *restrict out, const real *restrict src, int64_t n, int64_t B, int64_t b, int64_t m) {
    for (int64_t e = 0; e < n; e++) {
        vec v = {0};
        for (int64_t l = 0; l < m; l++) v[l] = src[e * B + b + l];
        out[e] = v;
    }
}

static void copy_out(real *restrict dst, const vec *restrict in, int64_t n, int64_t B, int64_t b, int64_t m) {
    for (int64_t e = 0; e < n; e++)
        for (int64_t l = 0; l < m; l++) dst[e * B + b + l] = in[e][l];
}

/* one epoch's loss terms: ||sqrt(lambda) D||^2 + 2<r, D> per lane, and G = s lambda D + s r,
 * for D = Q - P0 (n = d k entries) */
static vec terms(const Block *s, const vec *restrict Q, vec *restrict G, int64_t n) {
    vec sq = {0}, lin = {0};
    for (int64_t e = 0; e < n; e++) {
        vec D = Q[e] - s->P[e], x = s->root[e] * D;
        sq += x * x;
        lin += s->r[e] * D;
        G[e] = s->slam[e] * D + s->sr[e];
    }
    return sq + (real)2.0 * lin;
}

/* K epochs of the runs b .. b + m - 1 (m <= LANES); w, p, bf, Q per layer and G, G2, grad are
 * scratch buffers */
static void lane_block(const Block *s, int64_t b, int64_t m, vec **w, vec **p, vec **bf, vec **Q, vec *G,
                       vec *G2, vec *grad) {
    const int64_t L = s->L, *H = s->H, d = H[0], k = H[L], B = s->B;
    for (int64_t j = 0; j < L; j++) {
        copy_in(w[j], s->W[j], H[j] * H[j + 1], B, b, m);
        copy_in(p[j], s->prev[j], H[j] * H[j + 1], B, b, m);
        if (s->momentum) copy_in(bf[j], s->buf[j], H[j] * H[j + 1], B, b, m);
    }
    for (int64_t t = 0; t < s->K; t++) {
        const vec *q = w[0]; /* forward: Q_1 = W_1, Q_j = Q_{j-1} W_j */
        for (int64_t j = 1; j < L; j++) {
            mm(Q[j], q, w[j], d, H[j], H[j + 1]);
            q = Q[j];
        }
        vec loss = (terms(s, q, G, d * k) + s->floor_) / s->divisor;
        ivec go = {0}, dv = {0};
        vec lr = {0};
        for (int64_t l = 0; l < m; l++) {
            int64_t run = b + l, at = t * B + run;
            int code = judge(s, run, s->t0 + t, (double)loss[l], s->pasts[at]);
            s->losses[at] = (double)loss[l];
            s->codes[at] = (int8_t)code;
            go[l] = s->alive[run] ? -1 : 0;
            dv[l] = code == 1 ? -1 : 0;
            lr[l] = s->lrs[at];
        }
        /* backward and step, last layer first: grad_j = Q_{j-1}ᵀ G_j, G_{j-1} = G_j W_jᵀ */
        vec *g = G, *g2 = G2;
        for (int64_t j = L - 1; j >= 1; j--) {
            tm(grad, j == 1 ? w[0] : Q[j - 1], g, d, H[j], H[j + 1]);
            mt(g2, g, w[j], d, H[j], H[j + 1]);
            step(s, w[j], p[j], bf[j], grad, H[j] * H[j + 1], go, dv, lr);
            vec *x = g;
            g = g2;
            g2 = x;
        }
        step(s, w[0], p[0], bf[0], g, H[0] * H[1], go, dv, lr);
    }
    for (int64_t j = 0; j < L; j++) {
        copy_out(s->W[j], w[j], H[j] * H[j + 1], B, b, m);
        copy_out(s->prev[j], p[j], H[j] * H[j + 1], B, b, m);
        if (s->momentum) copy_out(s->buf[j], bf[j], H[j] * H[j + 1], B, b, m);
    }
}

/* Runs the lane blocks [b0, b1) (block i holds runs LANES i ...). Returns 0, or -1 when out of
 * memory or deeper than MAX_DEPTH. */
int sgd_block(const Block *s, int64_t b0, int64_t b1) {
#if defined(__SSE__)
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* flush denormals (FTZ | DAZ), as torch.set_flush_denormal(True) */
#endif
    const int64_t L = s->L, *H = s->H, d = H[0];
    int64_t wide = 0, size = 0;
    for (int64_t j = 0; j <= L; j++) wide = H[j] > wide ? H[j] : wide;
    for (int64_t j = 0; j < L; j++) size += H[j] * H[j + 1];
    /* per layer w, p, bf (its entries) and Q (d x wide); then G, G2 (d x wide), grad (wide x wide) */
    size_t total = (size_t)(3 * size + L * d * wide + 2 * d * wide + wide * wide);
    void *mem = NULL;
    int status = -1;
    if (L <= MAX_DEPTH && !posix_memalign(&mem, sizeof(vec), total * sizeof(vec))) {
        vec *w[MAX_DEPTH], *p[MAX_DEPTH], *bf[MAX_DEPTH], *Q[MAX_DEPTH], *at = mem;
        for (int64_t j = 0; j < L; j++) {
            int64_t n = H[j] * H[j + 1];
            w[j] = at, p[j] = at + n, bf[j] = at + 2 * n, Q[j] = at + 3 * n;
            at += 3 * n + d * wide;
        }
        vec *G = at, *G2 = G + d * wide, *grad = G2 + d * wide;
        for (int64_t i = b0; i < b1; i++) {
            int64_t b = i * LANES, m = s->B - b < LANES ? s->B - b : LANES;
            lane_block(s, b, m, w, p, bf, Q, G, G2, grad);
        }
        free(mem);
        status = 0;
    }
#if defined(__SSE__)
    _mm_setcsr(csr);
#endif
    return status;
}
