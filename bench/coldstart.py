"""Cold items: how well recnb ranks items that arrived after training, from their text alone.

Protocol (issue 14): hold out 10% of the items that have interactions (seed 0), with all their
interactions; train on the rest. Then give each held-out item the vectors the live-catalogue path
gives it (`recnb.catalogue.live_items`, what `recnb items add` and `POST /items` give a served model):
collaborative factors predicted from its embedding by the map `fit` learned
(`HybridRecommender.predict_factors`); its hybrid vector is that predicted part alone (the rows
"text part only" and "text + predicted" show the alternatives). For every user who has training
history and interactions with held-out items, rank the held-out items (none of which the user has
seen in training) and score recall@10 and nDCG@10 against those interactions.

Baselines on the same task, in the same run:
- random order;
- popularity within genre: a held-out item scores the share of the user's training interactions that
  fall in its genres, ties broken by how popular its genres are in the training data.

Warm quality: a fifth of each user's
interactions with the other items (stratified, seed 42) is held out of training too, and nDCG@10 over
the whole catalogue is scored on them before and after the held-out items are added (target: after
>= 0.99 x before); the same before and after on every held-out interaction, warm and cold, shows what
the additions bring.
MovieLens-100K may not be redistributed: it is read from --ml100k (default ../shared/data/movielens-100k)
and skipped when absent.
"""
import argparse, sys, time
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp
from recnb.catalogue import live_items
from recnb.data import Catalogue, load_data, stratified_split
from recnb.embeddings import EmbeddingCache, MODEL_ID, embed, item_texts
from recnb.metrics import hit_matrix, ndcg_at_k, ranking_metrics, top_k
from recnb.model import HybridRecommender, Params

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

def hold_out_items(items:pd.DataFrame, inter:pd.DataFrame, share:float=0.1, seed:int=0):
    "(warm items, cold items, training interactions, cold interactions): `share` of the items with interactions held out whole."
    rated = np.unique(inter.item_id.to_numpy())
    cold_ids = np.random.default_rng(seed).choice(rated, int(round(len(rated)*share)), replace=False)
    is_cold = items.item_id.isin(cold_ids)
    on_cold = inter.item_id.isin(cold_ids)
    return items[~is_cold], items[is_cold].sort_values('item_id').reset_index(drop=True), inter[~on_cold], inter[on_cold]

def genre_scores(train:pd.DataFrame, items:pd.DataFrame, cold:pd.DataFrame, users:np.ndarray)->np.ndarray:
    "Popularity within genre: the user's share of training interactions in each cold item's genres, plus a tie-break by genre popularity."
    g_of = items.set_index('item_id').genres.fillna('').str.split('|')
    tr = train[['user_id', 'item_id']].assign(genre=train.item_id.map(g_of)).explode('genre')
    share = tr.groupby(['user_id', 'genre']).size().unstack(fill_value=0)
    share = share.div(share.sum(axis=1), axis=0).reindex(users, fill_value=0)
    pop = tr.genre.value_counts(normalize=True)
    cg = cold.genres.fillna('').str.split('|')
    M = np.zeros((len(cold), len(share.columns)))
    col = {g: j for j, g in enumerate(share.columns)}
    for i, gs in enumerate(cg):
        for g in gs:
            if g in col: M[i, col[g]] = 1
    tie = np.array([np.mean([pop.get(g, 0) for g in gs]) if gs else 0 for gs in cg])
    return share.to_numpy() @ M.T + 1e-6*tie[None]

def binary(df:pd.DataFrame, users:np.ndarray, ids:np.ndarray)->sp.csr_matrix:
    "Users x items 0/1 matrix of `df`'s pairs (rows and columns in the order of the sorted `users` and `ids`)."
    df = df[np.isin(df.user_id, users) & np.isin(df.item_id, ids)]
    X = sp.csr_matrix((np.ones(len(df)), (np.searchsorted(users, df.user_id), np.searchsorted(ids, df.item_id))), shape=(len(users), len(ids)))
    X.data[:] = 1  # a repeated (user, item) pair counts once
    return X

def overall(m, L, users, rows, truth_warm, truth_cold, k):
    "nDCG@k over the whole catalogue, before the additions (trained items) and after (trained + live), seen items excluded."
    out = {}
    for b in range(0, len(users), 256):
        r = rows[b:b+256]
        S = m.scores(m.seen[r]); S[m.seen[r].nonzero()] = -np.inf
        Q = np.stack([m.query_vector(m.seen[i].indices) for i in r])
        after = np.hstack([S, Q @ L.hybrid.T])
        T_w, T_all = truth_warm[b:b+256], sp.hstack([truth_warm[b:b+256], truth_cold[b:b+256]]).tocsr()
        for key, scores, T in (('warm before', S, T_w), ('warm after', after, sp.hstack([T_w, sp.csr_matrix(truth_cold[b:b+256].shape)]).tocsr()),
                               ('all before', np.hstack([S, np.full((len(r), len(L)), -np.inf)]), T_all), ('all after', after, T_all)):
            out.setdefault(key, []).append(ndcg_at_k(*hit_matrix(top_k(scores, k), T)))  # per user; NaN without relevant items
    return {key: float(np.nanmean(np.concatenate(x))) for key, x in out.items()}

def run(name:str, label:str, items:pd.DataFrame, inter:pd.DataFrame, cache:EmbeddingCache, k:int=10)->dict:
    warm, cold, train, test = hold_out_items(items, inter)
    fit, warm_test = stratified_split(train, 0.8, 42)
    t = time.time()
    m = HybridRecommender(Params(), name=name).fit(warm, fit, cache, progress=False)
    fit_s = time.time() - t
    L = live_items(m, Catalogue(cold, frozenset(), 1), cache)  # the live-catalogue path: text and predicted factors
    assert len(L) == len(cold) and (L.ids == cold.item_id.to_numpy()).all()
    d = m.item_out.shape[1]
    users = np.intersect1d(np.unique(test.user_id.to_numpy()), m.user_ids)
    rows = np.searchsorted(m.user_ids, users)
    Q = np.stack([m.query_vector(m.seen[r].indices) for r in rows])
    truth = binary(test, users, L.ids)
    scores = {'random': np.random.default_rng(1).random((len(users), len(cold))),
              'popularity within genre': genre_scores(fit, items, cold, users),
              'recnb text part only': Q[:, d:] @ (L.text @ m.text_proj).T,
              'recnb text + predicted collaborative parts': Q @ np.hstack([L.hybrid[:, :d], L.text @ m.text_proj]).T,
              'recnb as served (predicted collaborative part)': Q @ L.hybrid.T}
    res = {n: ranking_metrics(top_k(S, k), truth, k) for n, S in scores.items()}
    print(f"\n{label}: {len(items)} items, {len(inter)} interactions; held out {len(cold)} items with {len(test)} interactions; "
          f"{len(users)} users evaluated; fit {fit_s:.1f} s (on 80% of the rest); text-to-factors map {m.card['text_to_cf']}")
    print(f"{'ranking the held-out items':<48}{'recall@10':>10}{'nDCG@10':>10}")
    for n, r in res.items(): print(f"{n:<48}{r[f'recall@{k}']:>10.4f}{r[f'ndcg@{k}']:>10.4f}")
    h, g = res['recnb as served (predicted collaborative part)'][f'recall@{k}'], res['popularity within genre'][f'recall@{k}']
    print(f"ratio recnb as served / popularity within genre, recall@{k}: {h/g:.2f} (target >= 2)")
    ev = m.user_ids[np.isin(m.user_ids, warm_test.user_id)]
    o = overall(m, L, ev, np.searchsorted(m.user_ids, ev), binary(warm_test, ev, m.item_ids), binary(test, ev, L.ids), k)
    print(f"overall nDCG@{k} over the whole catalogue, {len(ev)} users:")
    print(f"  on the held-out warm interactions: before the additions {o['warm before']:.4f}, after {o['warm after']:.4f}, "
          f"ratio {o['warm after']/o['warm before']:.4f} (target >= 0.99)")
    print(f"  on every held-out interaction (warm and cold): before {o['all before']:.4f}, after {o['all after']:.4f}, "
          f"ratio {o['all after']/o['all before']:.4f}")
    return dict(res, overall=o)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--ml100k', type=Path, default=ROOT.parent/'shared'/'data'/'movielens-100k')
    p.add_argument('--cache', type=Path, default=ROOT/'.bench'/'cache', help='embedding cache directory')
    a = p.parse_args()
    cache = EmbeddingCache(a.cache/f"embeddings-{MODEL_ID}.npz")
    run('ml-latest-small', 'ml-latest-small (bundled: title, genres, tags)', *load_data(None), cache)
    if (a.ml100k/'u.data').exists():
        from quality import load_ml100k
        run('ml100k', 'MovieLens-100K (title, genres)', *load_ml100k(a.ml100k), cache)
    else: print(f"\nMovieLens-100K: skipped (no u.data in {a.ml100k}; give --ml100k)")

if __name__ == '__main__': main()
