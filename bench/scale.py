"""recnb at catalogue scale: synthetic data of 20k and 200k items, `recnb train` as a user runs it, against baselines in the same run.

For each size a seeded synthetic data set in recnb's format (`recnb.synthetic`: Zipf popularity, lognormal
activity, users preferring a few of 40 topics whose words are in the titles) is split per user
(stratified 75/25, seed 42). The training part is written as `items.csv` + `interactions.csv` and trained
with `recnb train --data DIR` in a subprocess, twice: with an empty embedding cache (the first embedding)
and with the cache filled. The test part scores, on 5,000 sampled users with every unseen item ranked:

- recnb (the trained version, exact scores of its served vectors), popularity, implicit's ALS (128 factors,
  15 iterations), and dense EASE where its n_items² matrices fit in memory (best λ on the test split, so the
  comparison favours it);
- in-process `recommend` latency (the production model attached to its Qdrant collection, distinct users);
- HNSW recall@10 against exact search on the hybrid vectors with the users' seen items excluded;
- resident memory of `recnb serve` after 1,000 requests.

Load+validate is timed on the full data set (all interactions) in a subprocess. Peak RSS is each
subprocess's own (`wait4`). Generated data and the homes are kept under --root; --reuse-embeddings keeps
the embedding cache of an earlier run instead of measuring the first embedding again.
"""
import argparse, json, os, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NAME = 'movielens'  # the model's name (RECNB_MODEL_NAME), else it is named after the data directory
SIZES = {'20k': (20_000, 100_000, 2_000_000), '200k': (200_000, 1_000_000, 20_000_000)}

# A child's ru_maxrss counts the memory of the process it was forked (vforked) from: started from this
# process, after dense EASE, every child would show this process's peak. A small launcher starts it instead.
LAUNCH = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, st, ru = os.wait4(p.pid, 0); "
          "open(sys.argv[1], 'w').write(str(ru.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(st))")

def run(cmd, env, log:Path)->tuple[float, float, int]:
    "Run `cmd`; its wall seconds, its own peak RSS in GB, and its exit code (output in `log`)."
    t, rss = time.time(), log.with_suffix('.maxrss')
    with open(log, 'w') as f:
        rc = subprocess.run([sys.executable, '-c', LAUNCH, str(rss), *cmd], env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    return time.time()-t, int(rss.read_text())/1024**2, rc

def prepare(label, root:Path):
    "Generate (once) the data set of `label`, its training directory and its test split."
    from recnb.data import stratified_split
    from recnb.synthetic import synthetic_dataset, write_synthetic
    d = root/label
    if not (d/'test.parquet').exists():
        t = time.time()
        items, inter = synthetic_dataset(*SIZES[label])
        print(f"[{label}] generated {len(items):,} items, {inter.user_id.nunique():,} users, {len(inter):,} interactions in {time.time()-t:.0f} s", flush=True)
        write_synthetic(d/'full', items, inter)
        train, test = stratified_split(inter, 0.75, seed=42)
        write_synthetic(d/'train', items, train)
        test.to_parquet(d/'test.parquet', index=False)
    return d

def load_timing(d:Path, env)->dict:
    "Load+validate of the full data set, in a subprocess: seconds and peak RSS."
    code = ("import time; from recnb.pipeline import load_data; t=time.time(); i,x=load_data(%r); "
            "print(len(i), len(x), time.time()-t)") % str(d/'full')
    secs, rss, rc = run([sys.executable, '-c', code], env, d/'load.log')
    if rc: raise SystemExit(f"loading failed: {(d/'load.log').read_text()[-2000:]}")
    n_items, n, s = (d/'load.log').read_text().split()[-3:]
    return dict(rows=int(n), seconds=float(s), rss=rss)

def train_runs(d:Path, env, reuse:bool)->dict:
    "`recnb train` with an empty cache (unless reusing) and again with the cache filled."
    home = d/'home'
    cache = home/'cache'
    keep = d/'embedding-cache'
    out = {}
    if home.exists(): shutil.rmtree(home)
    if reuse and keep.exists():
        shutil.copytree(keep, cache)
        if (d/'first.json').exists(): out['first'] = {**json.loads((d/'first.json').read_text()), 'earlier_run': True}
    else:
        secs, rss, rc = run([str(BIN/'recnb'), 'train', '--data', str(d/'train')], env, d/'train-first.log')
        if rc: raise SystemExit(f"recnb train failed: {(d/'train-first.log').read_text()[-3000:]}")
        out['first'] = dict(seconds=secs, rss=rss, card=card(home, '1.0.0'))
        (d/'first.json').write_text(json.dumps(out['first'], default=str))
        if keep.exists(): shutil.rmtree(keep)
        shutil.copytree(cache, keep)
    secs, rss, rc = run([str(BIN/'recnb'), 'train', '--quiet', '--data', str(d/'train')], env, d/'train.log')
    if rc: raise SystemExit(f"recnb train failed: {(d/'train.log').read_text()[-3000:]}")
    version = sorted((home/'models'/NAME).iterdir(), key=lambda p: tuple(map(int, p.name.split('.'))))[-1].name
    out['cached'] = dict(seconds=secs, rss=rss, card=card(home, version), version=version)
    subprocess.run([str(BIN/'recnb'), 'models', 'promote', NAME, version, '--reason', 'bench'], env=env, check=True, capture_output=True)
    return out

def card(home, version): return json.loads((home/'models'/NAME/version/'model.json').read_text())

def ndcg(score_rows, Xtr, Xte, users, batch=500)->float:
    "nDCG@10 with seen items excluded; `score_rows(u)` gives dense scores of every item for users `u`."
    from recnb.metrics import hit_matrix, ndcg_at_k, top_k
    out = []
    for a in range(0, len(users), batch):
        u = users[a:a+batch]
        S = np.array(score_rows(u), dtype=np.float32)
        S[Xtr[u].nonzero()] = -np.inf
        out.append(ndcg_at_k(*hit_matrix(top_k(S, 10), Xte[u])))
    return float(np.nanmean(np.concatenate(out)))

def baselines(m, train, test, n_users:int, budget:float)->dict:
    "nDCG@10 of recnb, popularity, ALS and (where it fits) dense EASE on the same sampled test users."
    from recnb.ease import dense_bytes, ease
    Xtr, Xte = m.interactions_matrix(train), m.interactions_matrix(test)
    users = np.flatnonzero(np.diff(Xte.indptr) > 0)
    users = np.sort(np.random.RandomState(0).choice(users, min(n_users, len(users)), replace=False))
    res = {'recnb': ndcg(lambda u: m.scores(Xtr[u]), Xtr, Xte, users)}
    pop = np.asarray(Xtr.sum(0), dtype=np.float32).ravel()
    res['popularity'] = ndcg(lambda u: np.tile(pop, (len(u), 1)), Xtr, Xte, users)
    import implicit, threadpoolctl
    with threadpoolctl.threadpool_limits(1, 'blas'):  # implicit's advice: its own threads, not BLAS's
        t = time.time()
        als = implicit.cpu.als.AlternatingLeastSquares(factors=128, iterations=15, random_state=0)
        als.fit(Xtr.tocsr().astype(np.float32), show_progress=False)
        res['als_seconds'] = time.time()-t
    res['ALS (128 factors)'] = ndcg(lambda u: als.user_factors[u] @ als.item_factors.T, Xtr, Xte, users)
    if dense_bytes(m.n_items) <= budget:
        best = 0.
        for lam in (250., 1000., 2500.):
            t = time.time(); B = ease(Xtr, lam)
            best = max(best, ndcg(lambda u: Xtr[u] @ B, Xtr, Xte, users)); del B
            print(f"  dense EASE λ={lam:g}: {time.time()-t:.0f} s", flush=True)
        res['dense EASE'] = best
    return res

def serving(home:Path, env, n:int=2000)->dict:
    "In-process recommend latency and HNSW recall@10 on the production model."
    from recnb.config import Settings
    from recnb.usecases import Context, production_model
    from recnb.vectorstore import open_store
    s = Settings(home=home, model_name=NAME, mlflow_mirror=False)
    store = open_store(s)
    m = production_model(Context(s), store)
    rs = np.random.RandomState(2)
    rows = rs.choice(len(m.user_ids), 2*n, replace=False)
    for u in rows[n:n+200]: m.recommend(user_id=int(m.user_ids[u]), k=10)  # warm-up on other users
    lat = []
    for u in rows[:n]:
        t = time.perf_counter(); m.recommend(user_id=int(m.user_ids[u]), k=10); lat.append(time.perf_counter()-t)
    H = m.item_vectors()['hybrid']
    hits = []
    for u in rows[:1000]:
        q, seen = m._user_query(int(u))
        got = [h.id for h in store.search(m.collection, 'hybrid', q, 10, None, seen)]
        s_ = H @ q; s_[np.searchsorted(m.item_ids, np.fromiter(seen, np.int64))] = -np.inf
        exact = m.item_ids[np.argsort(-s_, kind='stable')[:10]]
        hits.append(len(set(got) & set(exact.tolist()))/10)
    exact_search = store._exact.get(m.collection) if hasattr(store, '_exact') else None
    store.close()
    return dict(p50=np.percentile(lat, 50)*1e3, p99=np.percentile(lat, 99)*1e3, recall=float(np.mean(hits)), exact=exact_search)

def serve_rss(home:Path, env, d:Path)->float:
    "Resident memory (GB) of `recnb serve` after 1,000 user and 20 text requests."
    import httpx, socket
    with socket.socket() as so: so.bind(('127.0.0.1', 0)); port = so.getsockname()[1]
    with open(d/'serve.log', 'w') as f:
        p = subprocess.Popen([str(BIN/'recnb'), 'serve', '--port', str(port)], env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + '/readyz', timeout=2).status_code == 200: break
            except httpx.HTTPError: pass
            time.sleep(0.5)
        else: raise SystemExit(f"recnb serve did not start: {(d/'serve.log').read_text()[-2000:]}")
        with httpx.Client(timeout=30) as c:
            for u in np.random.RandomState(3).randint(1, 1000, 1000): c.post(url + '/recommend', json={'user_id': int(u), 'k': 10})
            for i in range(20): c.post(url + '/recommend', json={'query': f"a story about a dragon and a castle {i}", 'k': 10})
        rss = next(int(l.split()[1]) for l in Path(f"/proc/{p.pid}/status").read_text().splitlines() if l.startswith('VmRSS'))
        return rss/1024**2
    finally:
        p.terminate(); p.wait(30)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--sizes', default='20k,200k', help=f"comma-separated, of {list(SIZES)}")
    ap.add_argument('--root', type=Path, default=ROOT/'.bench'/'scale', help='where data sets and homes are kept')
    ap.add_argument('--users', type=int, default=5000, help='test users scored')
    ap.add_argument('--reuse-embeddings', action='store_true', help="keep an earlier run's embedding cache")
    a = ap.parse_args()
    from recnb.ease import memory_budget
    from recnb.model import HybridRecommender
    budget = memory_budget()
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'RECNB_MLFLOW_MIRROR': 'false', 'RECNB_MODEL_NAME': NAME}
    report = {}
    for label in a.sizes.split(','):
        d = prepare(label, a.root)
        env_l = {**env, 'RECNB_HOME': str(d/'home')}
        r = report[label] = {'load': load_timing(d, env_l)}
        print(f"[{label}] load+validate {r['load']['rows']:,} interactions: {r['load']['seconds']:.1f} s, peak RSS {r['load']['rss']:.2f} GB", flush=True)
        r['train'] = train_runs(d, env_l, a.reuse_embeddings)
        c = r['train']['cached']['card']
        if 'first' in r['train']:
            f = r['train']['first']
            print(f"[{label}] first train{' (an earlier run, --reuse-embeddings)' if f.get('earlier_run') else ''} (embedding {f['card']['embedding']['embedded']:,} items in {f['card']['timings']['embed']:.0f} s): "
                  f"{f['seconds']:.0f} s, peak RSS {f['rss']:.2f} GB", flush=True)
        print(f"[{label}] train with embeddings cached: {r['train']['cached']['seconds']:.1f} s wall, peak RSS {r['train']['cached']['rss']:.2f} GB; "
              f"solver {c['solver']}; chosen {c['chosen']}; steps {c['timings']}", flush=True)
        m = HybridRecommender.load(d/'home'/'models'/NAME/r['train']['cached']['version'], mmap=False)
        train = pd.read_csv(d/'train'/'interactions.csv', usecols=['user_id', 'item_id'])
        test = pd.read_parquet(d/'test.parquet', columns=['user_id', 'item_id'])
        r['ndcg'] = baselines(m, train, test, a.users, budget)
        del m, train, test
        r['serving'] = serving(d/'home', env_l)
        r['serve_rss'] = serve_rss(d/'home', env_l, d)
        (d/'report.json').write_text(json.dumps(r, indent=1, default=str))
        nd = r['ndcg']
        print(f"[{label}] nDCG@10 on {a.users:,} test users: " + ', '.join(f"{k} {v:.4f}" for k, v in nd.items() if not k.endswith('seconds')) +
              f" (ALS fit {nd['als_seconds']:.0f} s)", flush=True)
        s = r['serving']
        print(f"[{label}] in-process recommend p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms; "
              f"{'exact search' if s['exact'] else 'HNSW'} recall@10 {s['recall']:.4f}; recnb serve RSS {r['serve_rss']:.2f} GB", flush=True)
    print("\nsummary (targets from issue 11)")
    for label, r in report.items():
        nd, t = r['ndcg'], r['train']['cached']
        line = [f"{label}: load+validate {r['load']['seconds']:.1f} s (<= 60)", f"train {t['seconds']:.0f} s", f"peak RSS {t['rss']:.2f} GB"]
        if 'dense EASE' in nd: line.append(f"recnb/dense EASE {nd['recnb']/nd['dense EASE']:.3f} (>= 0.97)")
        line += [f"recnb/ALS {nd['recnb']/nd['ALS (128 factors)']:.2f} (>= 1.2 at 200k)", f"recnb/popularity {nd['recnb']/nd['popularity']:.2f}",
                 f"recommend p50 {r['serving']['p50']:.2f} ms (<= 2)", f"recall@10 {r['serving']['recall']:.3f} (>= 0.95)", f"serve RSS {r['serve_rss']:.2f} GB"]
        print('  ' + '; '.join(line))

if __name__ == '__main__': main()
