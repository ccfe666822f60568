"""Evaluation speed: recnb's ranking metrics on 100,000 users x top-10 against ranx (warm) in the same run.

Six metrics at k = 10 (NDCG, MAP, precision, recall, MRR, hit rate) from top-10 lists and a sparse
truth matrix. ranx is timed after a first call on the same data has compiled its numba kernels; its
time to build Qrels and Run is reported apart. Target: recnb <= 2 s and at least as fast as ranx.
"""
import argparse, time
import numpy as np, pandas as pd, scipy.sparse as sp
from recnb.metrics import RANKING_METRICS, hit_matrix

def data(n_users, n_items, k, seed=0):
    rng = np.random.default_rng(seed)
    n_rel = rng.integers(1, 40, n_users)
    rows = np.repeat(np.arange(n_users), n_rel)
    cols = rng.integers(0, n_items, n_rel.sum())
    truth = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    truth.data[:] = 1
    # lists that hit often enough to matter: half the slots drawn from the user's relevant items
    top = rng.integers(0, n_items, (n_users, k))
    pick = rng.random((n_users, k)) < 0.3
    rel_first = cols[np.repeat(np.cumsum(n_rel) - n_rel, k).reshape(n_users, k) + (rng.integers(0, 1 << 30, (n_users, k)) % n_rel[:, None])]
    top[pick] = rel_first[pick]
    return top, truth

def recnb_eval(top, truth, k):
    hits, n_rel = hit_matrix(top, truth)
    return {n: float(np.nanmean(f(hits, n_rel, k))) for n,f in RANKING_METRICS.items()}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--users', type=int, default=100_000)
    ap.add_argument('--items', type=int, default=20_000)
    ap.add_argument('--k', type=int, default=10)
    ap.add_argument('--no-ranx', action='store_true')
    a = ap.parse_args()
    top, truth = data(a.users, a.items, a.k)
    # duplicates within a list would count twice in recnb and once in ranx: make lists duplicate-free
    for u in np.flatnonzero([len(set(r)) < a.k for r in top]):
        seen, row = set(), []
        for i in top[u]:
            while i in seen: i = (i + 1) % a.items
            seen.add(i); row.append(i)
        top[u] = row
    recnb_eval(top[:1000], truth[:1000], a.k)  # warm-up
    ts = []
    for _ in range(3):
        t = time.perf_counter(); mine = recnb_eval(top, truth, a.k); ts.append(time.perf_counter() - t)
    t_recnb = min(ts)
    print(f"{a.users} users x top-{a.k}, {truth.nnz} relevant pairs")
    print(f"recnb: {t_recnb:.3f} s (best of 3) " + ', '.join(f"{n} {v:.4f}" for n,v in mine.items()))
    if a.no_ranx: return
    from ranx import Qrels, Run, evaluate
    t = time.perf_counter()
    tu = truth.tocoo()
    obj = lambda x: pd.Series(x.astype(str), dtype=object)  # ranx wants object columns (pandas 3 makes str)
    qrels = Qrels.from_df(pd.DataFrame({'q_id': obj(tu.row), 'doc_id': obj(tu.col), 'score': np.ones(tu.nnz, int)}))
    rows = np.repeat(np.arange(a.users), a.k)
    run = Run.from_df(pd.DataFrame({'q_id': obj(rows), 'doc_id': obj(top.ravel()),
                                    'score': np.tile(np.arange(a.k, 0, -1), a.users).astype(float)}))
    t_build = time.perf_counter() - t
    metrics = [f'ndcg@{a.k}', f'map@{a.k}', f'precision@{a.k}', f'recall@{a.k}', f'mrr@{a.k}', f'hit_rate@{a.k}']
    t = time.perf_counter(); evaluate(qrels, run, metrics); t_first = time.perf_counter() - t
    ts = []
    for _ in range(3):
        t = time.perf_counter(); theirs = evaluate(qrels, run, metrics); ts.append(time.perf_counter() - t)
    t_ranx = min(ts)
    print(f"ranx: {t_ranx:.3f} s warm (best of 3); first call {t_first:.1f} s; building Qrels and Run {t_build:.1f} s")
    for n, rn in zip(mine, metrics):
        assert abs(mine[n] - theirs[rn]) < 1e-9, (n, mine[n], theirs[rn])
    print("same values as ranx (to 1e-9) for all six metrics")
    print(f"ratio ranx warm / recnb time: {t_ranx / t_recnb:.2f} (target >= 1); recnb {t_recnb:.3f} s (target <= 2 s)")

if __name__ == '__main__': main()
