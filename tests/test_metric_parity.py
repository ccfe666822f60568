"""recnb's metrics against the reference implementations: pytrec_eval (trec_eval itself), ranx and
scikit-learn, on randomised cases with ties, duplicate scores, users without relevant items and k
larger than the list.

Tie rule: recnb ranks equal scores by item index, lower first. trec_eval breaks ties by document id,
descending, so documents are named to make its rule the same as recnb's; ranx orders
ties in no fixed order, so it is given recnb's ranking as strictly decreasing scores. The cut-off k applies to the run:
trec_eval's `map` and `recip_rank` on the top-k list are recnb's `map@k` and `mrr@k`.
"""
import numpy as np, pytest, scipy.sparse as sp
import pytrec_eval
from ranx import Qrels, Run, evaluate as ranx_evaluate
from sklearn import metrics as skm
from recnb.metrics import (top_k, hit_matrix, ndcg_at_k, map_at_k, mrr_at_k, precision_at_k, recall_at_k,
                           rating_metrics, classification_metrics)

def cases(n=250, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        n_items = int(rng.integers(3, 40))
        scores = np.round(rng.random(n_items), int(rng.integers(0, 3)))  # 0-2 decimals: many ties
        n_rel = int(rng.integers(0, n_items+1)) if rng.random() > 0.1 else 0
        rel = rng.choice(n_items, n_rel, replace=False)
        k = int(rng.choice([1, 2, 3, 5, 10, 20, 50]))
        yield scores, rel, k

def recnb_metrics(scores, rel, k):
    truth = sp.csr_matrix((np.ones(len(rel)), (np.zeros(len(rel), int), rel)), shape=(1, len(scores)))
    top = top_k(scores[None], k)
    hits, n_rel = hit_matrix(top, truth)
    f = dict(ndcg=ndcg_at_k, map=map_at_k, mrr=mrr_at_k, P=precision_at_k, recall=recall_at_k)
    return top[0], {n: float(fn(hits, n_rel, k)[0]) for n,fn in f.items()}

def test_parity_with_pytrec_eval_and_ranx():
    checked = skipped = 0
    by_k = {}  # the cases of each cut-off, each a query: ranx is then called once per k (its per-call set-up is what costs)
    for c, (scores, rel, k) in enumerate(cases()):
        top, mine = recnb_metrics(scores, rel, k)
        if not len(rel):  # documented: users without relevant items are nan and left out of means
            assert all(np.isnan(v) for v in mine.values()); skipped += 1; continue
        n = len(scores)
        tid = lambda i: f"d{n - i:04d}"  # trec_eval ranks ties by id descending = recnb's lower index first
        qrels = {'q': {tid(i): 1 for i in rel}}
        run = {'q': {tid(i): float(scores[i]) for i in top}}
        te = pytrec_eval.RelevanceEvaluator(qrels, {f'ndcg_cut.{k}', 'map', 'recip_rank', f'P.{k}', f'recall.{k}'}).evaluate(run)['q']
        assert mine['ndcg'] == pytest.approx(te[f'ndcg_cut_{k}'], abs=1e-9)
        assert mine['map'] == pytest.approx(te['map'], abs=1e-9)
        assert mine['mrr'] == pytest.approx(te['recip_rank'], abs=1e-9)
        assert mine['P'] == pytest.approx(te[f'P_{k}'], abs=1e-9)
        assert mine['recall'] == pytest.approx(te[f'recall_{k}'], abs=1e-9)
        q = f"q{c:04d}"
        b = by_k.setdefault(k, dict(qrels={}, run={}, mine={}))
        b['qrels'][q] = {f"d{i}": 1 for i in rel}
        b['run'][q] = {f"d{i}": float(len(top)-r) for r,i in enumerate(top)}  # ranx's sort of ties is not stable: give it recnb's ranking
        b['mine'][q] = mine
        checked += 1
    for k, b in by_k.items():
        names = dict(ndcg=f'ndcg@{k}', map=f'map@{k}', mrr=f'mrr@{k}', P=f'precision@{k}', recall=f'recall@{k}')
        rq, rr = Qrels(b['qrels']), Run(b['run'])
        rx = ranx_evaluate(rq, rr, list(names.values()), return_mean=False)
        order = list(rr.keys())  # ranx's per-query scores come in the run's query order
        for m, r in names.items():
            assert [b['mine'][q][m] for q in order] == pytest.approx(list(rx[r]), abs=1e-9), (k, m)
    assert checked >= 200 and skipped > 0 and len(by_k) == 7

def test_rating_and_classification_parity_with_sklearn():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        t, p = rng.uniform(0.5, 5, n).round(1), rng.uniform(0.5, 5, n)
        r = rating_metrics(t, p)
        assert r['mse'] == pytest.approx(skm.mean_squared_error(t, p), abs=1e-12)
        assert r['mae'] == pytest.approx(skm.mean_absolute_error(t, p), abs=1e-12)
        assert r['rmse'] == pytest.approx(skm.root_mean_squared_error(t, p), abs=1e-12)
        assert r['r2'] == pytest.approx(skm.r2_score(t, p), abs=1e-12)
        yt, yp = rng.integers(0, 2, n), rng.integers(0, 2, n)
        if rng.random() < 0.1: yp[:] = 0  # no predicted positives: zero_division
        c = classification_metrics(yt, yp)
        assert c['accuracy'] == pytest.approx(skm.accuracy_score(yt, yp))
        assert c['precision'] == pytest.approx(skm.precision_score(yt, yp, zero_division=0))
        assert c['recall'] == pytest.approx(skm.recall_score(yt, yp, zero_division=0))
        assert c['f1'] == pytest.approx(skm.f1_score(yt, yp, zero_division=0))
        tn, fp, fn, tp = skm.confusion_matrix(yt, yp, labels=[0, 1]).ravel()
        assert (c['tp'], c['fp'], c['tn'], c['fn']) == (tp, fp, tn, fn)
        assert c['specificity'] == pytest.approx(tn/(tn+fp) if tn+fp else 0.)
