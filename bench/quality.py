"""recnb on MovieLens-100K under the Microsoft Recommenders protocol.

Per-user stratified 75/25 split (seed 42), k = 10, all of a user's test items relevant, every item the
user has not rated in training ranked. Every weight and hyperparameter is chosen by `fit` on a
validation split carved from the training part; the test part is used once, here, to report.
MovieLens-100K may not be redistributed: it is read from --data (default ../shared/data/movielens-100k).

Published table (Microsoft Recommenders README, nDCG@10): BiVAE 0.475, BPR 0.442, LightGCN 0.420,
NCF 0.396, SAR 0.382. `map@10` below is that table's MAP (average precision over the top 10 divided by
the number of relevant items).
"""
import argparse, time
from pathlib import Path
import numpy as np, pandas as pd
from recnb.data import stratified_split, title_year
from recnb.embeddings import EmbeddingCache, MODEL_ID
from recnb.metrics import ranking_metrics, top_k
from recnb.model import HybridRecommender, Params

ROOT = Path(__file__).resolve().parent.parent

def load_ml100k(d:Path):
    "Items and interactions of MovieLens-100K (u.data, u.item, u.genre)."
    inter = pd.read_csv(d/'u.data', sep='\t', names=['user_id', 'item_id', 'rating', 'timestamp'])
    genres = [l.split('|')[0] for l in (d/'u.genre').read_text(encoding='latin-1').splitlines() if l.strip()]
    raw = pd.read_csv(d/'u.item', sep='|', encoding='latin-1', header=None)
    flags = raw.iloc[:, 5:5+len(genres)].to_numpy().astype(bool)
    items = pd.DataFrame(dict(item_id=raw[0], title=raw[1].astype(str),
                              genres=['|'.join(g for g,f in zip(genres, row) if f and g!='unknown') for row in flags]))
    items['year'] = pd.to_datetime(raw[2], format='%d-%b-%Y', errors='coerce').dt.year.astype('Int64')
    items['year'] = items.year.fillna(items.title.map(title_year).astype('Int64'))
    items['tags'] = ''
    return items, inter

def evaluate(S, Xtr, truth, k=10):
    S = np.array(S, dtype=np.float64)
    S[Xtr.nonzero()] = -np.inf
    return ranking_metrics(top_k(S, k), truth, k)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, default=ROOT.parent/'shared'/'data'/'movielens-100k')
    p.add_argument('--cache', type=Path, default=ROOT/'.bench'/'cache', help='embedding cache directory')
    a = p.parse_args()
    if not (a.data/'u.data').exists(): raise SystemExit(f"bench/quality.py: error: no MovieLens-100K at {a.data} (give --data)")
    items, inter = load_ml100k(a.data)
    train, test = stratified_split(inter, 0.75, seed=42)
    cache = EmbeddingCache(a.cache/f"embeddings-{MODEL_ID}.npz")
    m = HybridRecommender(Params(), name='ml100k').fit(items, train, cache)
    if m.card['embedding']['embedded']:  # time training as it runs with the embeddings cached
        m = HybridRecommender(Params(), name='ml100k').fit(items, train, cache, progress=False)
    Xtr, Xte = m.interactions_matrix(train), m.interactions_matrix(test)
    users = np.flatnonzero(np.diff(Xte.indptr) > 0)
    Xu, truth = Xtr[users], Xte[users]
    pop = np.asarray(Xtr.sum(0)).ravel().astype(np.float64)
    rows = {'popularity': evaluate(np.tile(pop, (len(users), 1)), Xu, truth),
            'recnb text only': evaluate(m.scores(Xu, 'text'), Xu, truth),
            'recnb collaborative only': evaluate(m.scores(Xu, 'cf'), Xu, truth),
            'recnb hybrid': evaluate(m.scores(Xu), Xu, truth)}
    c = m.card['chosen']
    print(f"MovieLens-100K: {len(inter)} ratings, {inter.user_id.nunique()} users, {len(items)} items; "
          f"train {len(train)}, test {len(test)}; {len(users)} users evaluated")
    print(f"chosen on validation: lambda={c['lam']:g}, text weight={c['text_weight']:g} (validation NDCG@10 {c['valid_ndcg']:.4f})")
    print("validation grid (NDCG@10):")
    for r in m.card['validation']: print(f"  lambda={r['lam']:>6g}  text weight={r['text_weight']:<5g} {r['ndcg']:.4f}")
    print(f"\n{'model':<26}{'MAP@10':>9}{'nDCG@10':>9}{'P@10':>9}{'R@10':>9}")
    for n,r in rows.items(): print(f"{n:<26}{r['map@10']:>9.4f}{r['ndcg@10']:>9.4f}{r['precision@10']:>9.4f}{r['recall@10']:>9.4f}")
    h, cf, t, pp = (rows[n]['ndcg@10'] for n in ('recnb hybrid', 'recnb collaborative only', 'recnb text only', 'popularity'))
    print(f"\ntraining time (embeddings cached): {m.card['train_seconds']:.2f} s")
    print(f"nDCG@10 hybrid {h:.4f} (target >= 0.46; BiVAE 0.475)")
    print(f"ratio hybrid / popularity nDCG@10: {h/pp:.2f} (target >= 1.8)")
    print(f"what each part adds: text over collaborative {h-cf:+.4f} nDCG@10; collaborative over text {h-t:+.4f}")

if __name__ == '__main__': main()
