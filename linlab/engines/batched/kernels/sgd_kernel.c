/* Stacked SGD epochs with the stop rules, in C: linlab.engines.batched.kernels.native builds and loads it.
 *
 * The same epochs as kernels/fused.py's sgd_block (read that docstring first): factors
 * W_j of shape (H_{j-1}, H_j, B) with the run index last, the first layer in the eigenbasis of
 * A = XᵀX, plain SGD with optional momentum, Nesterov and weight decay, and fit's stop rules
 * per run and per epoch. Runs go LANES at a time: a lane block's factors are copied into
 * small contiguous buffers of lane vectors (one holds one entry of LANES runs, as NV vectors
 * of the CPU's width), which stay in the L1/L2 cache for all K epochs of the call (32 lanes:
 * a product's accumulator is several independent vector chains, not one latency-bound one);
 * every product of the runs' tiny matrices is then a few vector operations per entry, and the
 * results are copied back. (Vectors wider than the CPU's, written as one vector type, are
 * lowered by the compiler through memory, several times slower.) A lane block whose runs have all
 * stopped stops there. Lane blocks are taken in turn from a shared counter, so threads that
 * call sgd_block on the same Block share the work however long each block runs.
 *
 * Each epoch's loss goes straight into the caller's history (T + 1, stride) at row t0 + t, and
 * the running best loss into best_hist when the stall rule can fire; a run's stop is
 * reported once, as its epoch and code.
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
#if defined(__AVX512F__)
#define VBYTES 64
#elif defined(__AVX__)
#define VBYTES 32
#else
#define VBYTES 16
#endif
#define NV (LANES * (int)sizeof(real) / VBYTES) /* CPU vectors per lane vector */
#define EACH for (int u = 0; u < NV; u++)
typedef real hv __attribute__((vector_size(VBYTES)));   /* one CPU vector */
typedef mask_t hm __attribute__((vector_size(VBYTES))); /* its mask: -1 (all bits) or 0 per entry */
typedef union {
    hv v[NV];
    real x[LANES];
} vec; /* one entry of LANES runs */
typedef union {
    hm v[NV];
    mask_t x[LANES];
} mask;
/* the stop rules are in double whatever real is: DN vectors of doubles per lane vector */
#define DN (LANES * 8 / VBYTES)
#define EACHD for (int u = 0; u < DN; u++)
typedef double dv __attribute__((vector_size(VBYTES)));
typedef int64_t dm __attribute__((vector_size(VBYTES))); /* comparisons of dv give these: -1 or 0 */
typedef union {
    dv v[DN];
    double x[LANES];
} dvec;
typedef union {
    dm v[DN];
    int64_t x[LANES];
} dmask;

typedef struct {
    int64_t L;             /* depth */
    const int64_t *H;      /* widths H_0 = d, ..., H_L = k (padded to the stack's widest) */
    int64_t B;             /* runs in the stack */
    real **W, **prev, **buf; /* per layer, (H_{j-1}, H_j, B); buf only with momentum */
    const real *P, *root, *slam, *sr, *r; /* (d, k): P0, sqrt(lambda), s*lambda, s*r, r */
    real floor_, divisor, mu, wd;
    int64_t K, t0;         /* epochs t0 .. t0 + K - 1 in this call */
    const double *base;    /* (B,) each run's learning rate; at epoch t0 + t it is */
    const double *scale;   /* base * scale[t * S + which[run]] ((K, S): one column per schedule) */
    const int64_t *which;  /* (B,) */
    int64_t S, constant;   /* constant: every scale is 1 (no schedule), scale unread */
    uint8_t *alive;        /* (B,) */
    double *limit, *best;  /* (B,) */
    const double *factor, *tol, *rtol; /* (B,) diverge_factor, tol, stall_rtol */
    const int64_t *epochs, *window; /* (B,) epoch limit and stall_window */
    int64_t stride;        /* row length of history and best_hist (runs are columns 0 .. B - 1) */
    double *history;       /* (T + 1, stride) out: the loss of every epoch (past a run's stop: unread) */
    double *best_hist;     /* (T + 1, stride) in/out: the best loss so far (NULL: no run can stall) */
    int64_t *stop_t;       /* (B,) out: the epoch at which the run stopped */
    int8_t *codes;         /* (B,) out: 1 diverged, 2 converged, 3 max_epochs, 4 stalled (0: going on) */
    int64_t momentum, nesterov, decay;
    int64_t next;          /* the next lane block to take (set to 0 by the caller) */
} Block;

/* a where m is set, else b */
static inline hv select(hm m, hv a, hv b) { return (hv)(((hm)a & m) | ((hm)b & ~m)); }
static inline dv dselect(dm m, dv a, dv b) { return (dv)(((dm)a & m) | ((dm)b & ~m)); }

/* out (rows, cols) = X (rows, n) @ Y (n, cols) per lane, X and Y given by their strides in
 * entries (rx, nx) and (ny, cy): so one loop serves X Y, Xᵀ Y and X Yᵀ */
static void product(vec *restrict out, const vec *restrict X, int64_t rx, int64_t nx, const vec *restrict Y,
                    int64_t ny, int64_t cy, int64_t rows, int64_t n, int64_t cols) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            hv acc[NV];
            EACH acc[u] = (hv){0};
            for (int64_t q = 0; q < n; q++) {
                const vec *x = &X[i * rx + q * nx], *y = &Y[q * ny + j * cy];
                EACH acc[u] += x->v[u] * y->v[u];
            }
            EACH out[i * cols + j].v[u] = acc[u];
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
 * run goes on (go), the previous W where it diverged (undo), W where it stopped. */
static void step(const Block *s, vec *restrict w, vec *restrict p, vec *restrict b, const vec *restrict g,
                 int64_t n, const mask *go, const mask *undo, const vec *lr) {
    const hv mu = (hv){0} + s->mu, wd = (hv){0} + s->wd;
    for (int64_t e = 0; e < n; e++)
        EACH {
            hv W = w[e].v[u], gl = g[e].v[u];
            if (s->decay) gl = gl + wd * W;
            if (s->momentum) {
                b[e].v[u] = select(go->v[u], mu * b[e].v[u] + gl, b[e].v[u]);
                gl = s->nesterov ? gl + mu * b[e].v[u] : b[e].v[u];
            }
            w[e].v[u] = select(go->v[u], W - lr->v[u] * gl, select(undo->v[u], p[e].v[u], W));
            p[e].v[u] = W;
        }
}

/* The stop rule state of a lane block's runs, one lane each (lanes past the stack's end are
 * never alive), as vectors of doubles and of 64-bit integers; alive is a mask (-1 or 0). */
typedef struct {
    dmask alive, epochs, window;
    dvec limit, best, factor, tol, rtol, base;
    int64_t window_min; /* the smallest stall_window of the block's runs */
    int64_t live;       /* how many are alive */
} Lanes;

static void lanes_in(const Block *s, Lanes *z, int64_t b, int64_t m) {
    z->window_min = INT64_MAX, z->live = 0;
    for (int64_t l = 0; l < LANES; l++) {
        int64_t run = b + (l < m ? l : 0);
        z->alive.x[l] = -(int64_t)(l < m && s->alive[run]);
        z->live -= z->alive.x[l];
        z->limit.x[l] = s->limit[run], z->best.x[l] = s->best[run], z->factor.x[l] = s->factor[run];
        z->tol.x[l] = s->tol[run], z->rtol.x[l] = s->rtol[run], z->base.x[l] = s->base[run];
        z->epochs.x[l] = s->epochs[run], z->window.x[l] = l < m ? s->window[run] : INT64_MAX;
        if (z->window.x[l] < z->window_min) z->window_min = z->window.x[l];
    }
}

static void lanes_out(const Block *s, const Lanes *z, int64_t b, int64_t m) {
    for (int64_t l = 0; l < m; l++) {
        s->alive[b + l] = (uint8_t)(z->alive.x[l] & 1);
        s->limit[b + l] = z->limit.x[l], s->best[b + l] = z->best.x[l];
    }
}

/* rows.py's judge for epoch t of a lane block's runs (their losses in `loss`): updates their
 * state, reports the runs that stop, and sets go (the runs that go on) and undo (diverged).
 * Branch-free on vectors of lanes; flags are masks (-1 or 0). */
static void judge(const Block *s, Lanes *z, int64_t b, int64_t t, const dvec *loss, mask *go, mask *undo) {
    dvec past; /* the best loss stall_window epochs back; NaN before it exists (never stalls) */
    for (int64_t l = 0; l < LANES; l++) past.x[l] = NAN;
    if (s->best_hist && t >= z->window_min)
        for (int64_t l = 0; l < LANES; l++)
            if (z->alive.x[l] && t >= z->window.x[l])
                past.x[l] = s->best_hist[(t - z->window.x[l]) * s->stride + b + l];
    const int first = t == 0;
    const dv zero = {0}, tiny = zero + 1e-300;
    const dm now = (dm){0} + t, start = (dm){0} - first;
    dmask on, diverged, code;
    dm stops = {0}, live = {0};
    EACHD {
        const dv x = loss->v[u], limit = z->limit.v[u], old = z->best.v[u];
        const dm alive = z->alive.v[u];
        const dm bad = alive & (first ? ~(x - x == zero) : ~(x <= limit));
        const dv y = dselect(bad, zero, x);
        z->limit.v[u] = first ? z->factor.v[u] * dselect(y < tiny, tiny, y) : limit;
        const dm fine = alive & ~bad;
        const dv best = dselect(fine, dselect(start | (x < old), x, old), old);
        z->best.v[u] = best;
        const dm end = fine & (z->epochs.v[u] == now);
        const dm converged = fine & ~end & (x <= z->tol.v[u]);
        const dv ago = past.v[u];
        const dm stalled = fine & ~end & ~converged & (ago - best <= z->rtol.v[u] * ago);
        on.v[u] = fine & ~end & ~converged & ~stalled;
        diverged.v[u] = bad;
        code.v[u] = (bad & 1) | (converged & 2) | (end & 3) | (stalled & 4); /* at most one is set */
        stops |= code.v[u];
        live -= on.v[u];
        z->alive.v[u] = on.v[u];
    }
    z->live = 0;
    for (int i = 0; i < VBYTES / 8; i++) z->live += live[i];
    for (int64_t l = 0; l < LANES; l++) go->x[l] = (mask_t)on.x[l], undo->x[l] = (mask_t)diverged.x[l];
    int64_t any = 0;
    for (int i = 0; i < VBYTES / 8; i++) any |= stops[i];
    if (any)
        for (int64_t l = 0; l < LANES; l++)
            if (code.x[l]) s->stop_t[b + l] = t, s->codes[b + l] = (int8_t)code.x[l];
}

/* n entries of runs b .. b + m - 1 between the stack (run index last) and a lane buffer */
static void copy_in(vec *restrict out, const real *restrict src, int64_t n, int64_t B, int64_t b, int64_t m) {
    for (int64_t e = 0; e < n; e++) {
        for (int64_t l = 0; l < m; l++) out[e].x[l] = src[e * B + b + l];
        for (int64_t l = m; l < LANES; l++) out[e].x[l] = 0;
    }
}

static void copy_out(real *restrict dst, const vec *restrict in, int64_t n, int64_t B, int64_t b, int64_t m) {
    for (int64_t e = 0; e < n; e++)
        for (int64_t l = 0; l < m; l++) dst[e * B + b + l] = in[e].x[l];
}

/* one epoch's loss per lane, (||sqrt(lambda) D||^2 + 2<r, D> + L*) / divisor, and G = s lambda D + s r,
 * for D = Q - P0 (n = d k entries); CHUNK CPU vectors at a time, so that both sums of each stay
 * in registers */
#define CHUNK (NV < 4 ? NV : 4)
static void terms(const Block *s, const vec *restrict Q, vec *restrict G, int64_t n, dvec *loss) {
    vec sq, lin;
    for (int c = 0; c < NV; c += CHUNK) {
        hv a[CHUNK], r[CHUNK]; /* sq and lin of this chunk */
        for (int u = 0; u < CHUNK; u++) a[u] = r[u] = (hv){0};
        for (int64_t e = 0; e < n; e++)
            for (int u = 0; u < CHUNK; u++) {
                hv D = Q[e].v[c + u] - s->P[e], x = s->root[e] * D;
                a[u] += x * x;
                r[u] += s->r[e] * D;
                G[e].v[c + u] = s->slam[e] * D + s->sr[e];
            }
        for (int u = 0; u < CHUNK; u++) sq.v[c + u] = a[u], lin.v[c + u] = r[u];
    }
    EACH sq.v[u] = (sq.v[u] + (real)2.0 * lin.v[u] + s->floor_) / s->divisor;
    for (int l = 0; l < LANES; l++) loss->x[l] = (double)sq.x[l];
}

/* K epochs of the runs b .. b + m - 1 (m <= LANES), or fewer once all have stopped; w, p, bf, Q
 * per layer and G, G2, grad are scratch buffers */
static void lane_block(const Block *s, int64_t b, int64_t m, vec **w, vec **p, vec **bf, vec **Q, vec *G,
                       vec *G2, vec *grad) {
    const int64_t L = s->L, *H = s->H, d = H[0], k = H[L], B = s->B;
    Lanes z;
    lanes_in(s, &z, b, m);
    if (!z.live) return;
    for (int64_t j = 0; j < L; j++) {
        copy_in(w[j], s->W[j], H[j] * H[j + 1], B, b, m);
        copy_in(p[j], s->prev[j], H[j] * H[j + 1], B, b, m);
        if (s->momentum) copy_in(bf[j], s->buf[j], H[j] * H[j + 1], B, b, m);
    }
    vec lr; /* without a schedule, the same every epoch */
    for (int64_t l = 0; l < LANES; l++) lr.x[l] = (real)z.base.x[l];
    for (int64_t t = 0; t < s->K && z.live; t++) {
        const int64_t at = s->t0 + t;
        const vec *q = w[0]; /* forward: Q_1 = W_1, Q_j = Q_{j-1} W_j */
        for (int64_t j = 1; j < L; j++) {
            mm(Q[j], q, w[j], d, H[j], H[j + 1]);
            q = Q[j];
        }
        dvec loss;
        terms(s, q, G, d * k, &loss);
        memcpy(s->history + at * s->stride + b, loss.x, (size_t)m * sizeof(double));
        mask go, undo;
        judge(s, &z, b, at, &loss, &go, &undo);
        if (s->best_hist) memcpy(s->best_hist + at * s->stride + b, z.best.x, (size_t)m * sizeof(double));
        if (!s->constant)
            for (int64_t l = 0; l < m; l++) lr.x[l] = (real)(z.base.x[l] * s->scale[t * s->S + s->which[b + l]]);
        /* backward and step, last layer first: grad_j = Q_{j-1}ᵀ G_j, G_{j-1} = G_j W_jᵀ */
        vec *g = G, *g2 = G2;
        for (int64_t j = L - 1; j >= 1; j--) {
            tm(grad, j == 1 ? w[0] : Q[j - 1], g, d, H[j], H[j + 1]);
            mt(g2, g, w[j], d, H[j], H[j + 1]);
            step(s, w[j], p[j], bf[j], grad, H[j] * H[j + 1], &go, &undo, &lr);
            vec *x = g;
            g = g2;
            g2 = x;
        }
        step(s, w[0], p[0], bf[0], g, H[0] * H[1], &go, &undo, &lr);
    }
    for (int64_t j = 0; j < L; j++) {
        copy_out(s->W[j], w[j], H[j] * H[j + 1], B, b, m);
        copy_out(s->prev[j], p[j], H[j] * H[j + 1], B, b, m);
        if (s->momentum) copy_out(s->buf[j], bf[j], H[j] * H[j + 1], B, b, m);
    }
    lanes_out(s, &z, b, m);
}

/* Runs lane blocks b0 + i for i taken in turn from s->next until b0 + i reaches b1 (block i holds
 * runs LANES i ...); several threads may run it on one Block. Returns 0, or -1 when out of
 * memory or deeper than MAX_DEPTH. */
int sgd_block(Block *s, int64_t b0, int64_t b1) {
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
        for (int64_t i; (i = b0 + __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED)) < b1;) {
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
