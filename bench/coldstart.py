"""Cold items: how well recnb ranks items that arrived after training, from their text alone.

Protocol (issue 14): hold out 10% of the items that have interactions (seed 0), with all their
interactions; train on the rest. Then give each held-out item the vectors the live-catalogue path
will give it: the text part from its embedding, the collaborative part predicted from the embedding
by the map `fit` learned (`HybridRecommender.predict_factors`). For every user who has training
history and interactions with held-out items, rank the held-out items (none of which the user has
seen in training) and score recall@10 and nDCG@10 against those interactions.

Baselines on the same task, in the same run:
- random order;
- popularity within genre: a held-out item scores the share of the user's training interactions that
  fall in its genres, ties broken by how popular its genres are in the training data.

Not measured yet: overall nDCG@10 before and after adding the items to a served model, which needs
`recnb items add` (not built yet). This bench measures the mapping that path will use.
MovieLens-100K may not be redistributed: it is read from --ml100k (default ../shared/data/movielens-100k)
and skipped when absent.
"""
import argparse, sys, time
from pathlib import Path
import numpy as np, pandas as pd, scipy.sparse as sp
from recnb.data import load_data
from recnb.embeddings import EmbeddingCache, MODEL_ID, embed, item_texts
from recnb.metrics import ranking_metrics, top_k
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

def run(name:str, label:str, items:pd.DataFrame, inter:pd.DataFrame, cache:EmbeddingCache, k:int=10)->dict:
    warm, cold, train, test = hold_out_items(items, inter)
    t = time.time()
    m = HybridRecommender(Params(), name=name).fit(warm, train, cache, progress=False)
    fit_s = time.time() - t
    E, _ = embed(item_texts(cold), cache, progress=False)
    _, out = m.predict_factors(E)
    text = E @ m.text_proj
    users = np.intersect1d(np.unique(test.user_id.to_numpy()), m.user_ids)
    rows = np.searchsorted(m.user_ids, users)
    Q = np.stack([m.query_vector(m.seen[r].indices) for r in rows])
    d = out.shape[1]
    keep = np.isin(test.user_id, users)
    truth = sp.csr_matrix((np.ones(keep.sum()), (np.searchsorted(users, test.user_id[keep]), np.searchsorted(cold.item_id, test.item_id[keep]))),
                          shape=(len(users), len(cold)))
    truth.data[:] = 1  # a repeated (user, item) pair counts once
    scores = {'random': np.random.default_rng(1).random((len(users), len(cold))),
              'popularity within genre': genre_scores(train, items, cold, users),
              'recnb text part only': Q[:, d:] @ text.T,
              'recnb predicted collaborative part only': Q[:, :d] @ out.T,
              'recnb hybrid (text + predicted)': Q @ np.hstack([out, text]).T}
    res = {n: ranking_metrics(top_k(S, k), truth, k) for n, S in scores.items()}
    print(f"\n{label}: {len(items)} items, {len(inter)} interactions; held out {len(cold)} items with {len(test)} interactions; "
          f"{len(users)} users evaluated; fit {fit_s:.1f} s; text-to-factors map {m.card['text_to_cf']}")
    print(f"{'ranking the held-out items':<42}{'recall@10':>10}{'nDCG@10':>10}")
    for n, r in res.items(): print(f"{n:<42}{r[f'recall@{k}']:>10.4f}{r[f'ndcg@{k}']:>10.4f}")
    h, g = res['recnb hybrid (text + predicted)'][f'recall@{k}'], res['popularity within genre'][f'recall@{k}']
    print(f"ratio recnb hybrid / popularity within genre, recall@{k}: {h/g:.2f} (target >= 2)")
    return res

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
