"""The stores side by side: the file backend under a home against PostgreSQL (a private server, fsync on).

1. Events ingested per second: batches of 1,000 events, each with an `event_id`, appended through the
   event store (`FileEvents`, `SqlEvents`), each batch acknowledged only once it is stored.
   Target: at least 20,000 events/s into PostgreSQL.
2. Promotion latency: two versions promoted in turn (`Registry.promote`), p50 and p99.
3. `POST /recommend` p50 over HTTP, 8 clients, `recnb serve` on the same trained home with its registry
   in files and in PostgreSQL (the home imported with `import_home`), loaded in turn for `--rounds`
   rounds as bench/serving.py does. Target: PostgreSQL's p50 at most 1.05 x the file backend's.

The trained home is bench/serving.py's (.bench/home; trained there on the first run). Each run saves
.bench/results/store-COMMIT.json.
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path[:0] = [str(ROOT/'tools'), str(ROOT/'bench')]
from postgres import PostgresServer
from serving import commit, http_rounds, median

TARGETS = {'events_per_s_postgresql': ('events/s into PostgreSQL (batches of 1,000, with ids)', 20_000, True),
           'recommend_p50_postgresql_vs_file': ('/recommend p50, PostgreSQL / file backend', 1.05, False)}

def ingest_rate(ev, batches:int, size:int=1000)->float:
    "Events per second appended to `ev`, `batches` batches of `size` with ids."
    rng = np.random.default_rng(0)
    frames = [(pd.DataFrame(dict(user_id=rng.integers(1, 600, size), item_id=rng.integers(1, 9000, size), rating=np.ones(size),
                                 timestamp=np.full(size, 1_700_000_000 + b))), [f"b{b}-{i}" for i in range(size)]) for b in range(batches)]
    t = time.perf_counter()
    for df, ids in frames: assert ev.append(df, ids)['rows'] == size
    return batches*size / (time.perf_counter()-t)

def promotion_ms(reg, n:int)->dict:
    "p50 and p99 (ms) of `n` promotions alternating between two versions."
    for _ in range(2):
        v = reg.register('bench', params={'rank': 8}, embedding_model='e')['version']
        reg.transition('bench', v, 'validation'); reg.promote('bench', v)
    lat = []
    for i in range(n):
        t = time.perf_counter(); reg.promote('bench', ('1.0.0', '1.0.1')[i % 2]); lat.append(time.perf_counter()-t)
    return dict(p50=float(np.percentile(lat, 50)*1e3), p99=float(np.percentile(lat, 99)*1e3))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--home', type=Path, default=ROOT/'.bench'/'home', help="a trained home (bench/serving.py's)")
    ap.add_argument('--batches', type=int, default=100)
    ap.add_argument('--promotions', type=int, default=60)
    ap.add_argument('--seconds', type=float, default=2.5)
    ap.add_argument('--rounds', type=int, default=6)
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--results', type=Path, default=ROOT/'.bench'/'results')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from recnb.registry import Registry
    from recnb.store import Database, FileEvents, SqlEvents, SqlRegistry, import_home
    if not (a.home/'registry'/'registry.json').exists(): raise SystemExit(f"no trained home at {a.home}: run bench/serving.py first (it trains one)")
    tmp = Path(tempfile.mkdtemp(prefix='recnb-store-bench-'))
    pg = PostgresServer().start()
    try:
        dbs = {n: Database(pg.create_db(n)) for n in ('events', 'registry', 'serving')}
        for d in dbs.values(): d.upgrade()
        r = dict(commit=commit(), time=time.strftime('%Y-%m-%dT%H:%M:%S'))
        r['events_per_s'] = dict(file=ingest_rate(FileEvents(tmp/'file'/'interactions.csv'), a.batches), postgresql=ingest_rate(SqlEvents(dbs['events']), a.batches))
        print(f"events ingested per second, batches of 1,000 with ids: file {r['events_per_s']['file']:,.0f}, PostgreSQL {r['events_per_s']['postgresql']:,.0f}")
        r['promotion_ms'] = dict(file=promotion_ms(Registry(tmp/'file'/'registry'), a.promotions), postgresql=promotion_ms(Registry(backend=SqlRegistry(dbs['registry'])), a.promotions))
        print("promotion latency ms (p50 / p99): " + ', '.join(f"{k} {v['p50']:.2f} / {v['p99']:.2f}" for k, v in r['promotion_ms'].items()))
        print(f"imported {a.home} into PostgreSQL:", import_home(a.home, dbs['serving']))
        env = {**os.environ, 'RECNB_HOME': str(a.home), 'HF_HUB_OFFLINE': '1', 'RECNB_MLFLOW_MIRROR': 'false'}
        users = [int(u) for u in np.random.RandomState(1).randint(1, 611, 500)]
        bodies = [json.dumps({'user_id': u, 'k': 10}).encode() for u in users]
        cmd = [str(BIN/'recnb'), 'serve']
        rounds = http_rounds({'file': (cmd, env), 'postgresql': (cmd, {**env, 'RECNB_STORE_URL': dbs['serving'].url})}, bodies, a.seconds, a.clients, a.rounds)
        r['http'] = {n: dict(p50=median([x[n]['p50'] for x in rounds]), p99=median([x[n]['p99'] for x in rounds]), rps=median([x[n]['rps'] for x in rounds])) for n in rounds[0]}
        r['http_rounds'] = rounds
        for n, h in r['http'].items(): print(f"HTTP 8 clients, registry in {n:<10}: p50 {h['p50']:.2f} ms  p99 {h['p99']:.2f} ms  {h['rps']:.0f} req/s (medians of {a.rounds} rounds)")
        ratios = dict(events_per_s_postgresql=r['events_per_s']['postgresql'],
                      recommend_p50_postgresql_vs_file=median([x['postgresql']['p50']/x['file']['p50'] for x in rounds]))
        r['ratios'] = ratios
        print(f"\n{'measure':<60} {'this run':>10} {'target':>8}  met")
        for k, (what, target, higher) in TARGETS.items():
            v = ratios[k]; met = v >= target if higher else v <= target
            print(f"{what:<60} {v:>10.3f} {('>= ' if higher else '<= ') + f'{target:g}':>8}  {'yes' if met else 'NO'}")
        a.results.mkdir(parents=True, exist_ok=True)
        out = a.results/f"store-{r['commit']}.json"; out.write_text(json.dumps(r, indent=1, default=str)); print(f"saved {out}")
    finally:
        pg.stop(remove=True); shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__': main()
