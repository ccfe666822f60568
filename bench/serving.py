"""Latency and throughput of recnb's recommendations, each against a floor measured in the same run.

1. In process: `HybridRecommender.recommend(user_id=...)` (the vector store's search with the user's seen
   items excluded, titles attached) against an exact numpy top-10 over the same item vectors. Target:
   recommend p50 at most 2.5 x the numpy top-10.
2. Over HTTP on loopback with 8 concurrent keep-alive clients: `POST /recommend` served by
   `recnb serve` (uvicorn, the real app) against a bare FastAPI endpoint returning a fixed payload,
   under uvicorn with the same (default) settings, access log included. Targets: p99 <= 25 ms and at
   least 40% of the bare endpoint's requests/s with one worker; with `recnb serve --workers 2`, at least half
   of the bare endpoint's (one worker). recnb is also run with monitoring and logging switched off
   (RECNB_MONITORING=false, RECNB_LOG_LEVEL=WARNING): with them on, p50 at most 5% higher.

The four servers are started together and loaded in turn, `--rounds` times (the order reversed every other
round), so that each ratio is taken between runs seconds apart: each ratio printed is the median over the
rounds of the ratio within a round, which holds on a machine whose speed drifts by a quarter from minute to
minute (this one's does). The per-server lines are medians over the rounds too.

Each run saves its result as .bench/results/serving-COMMIT.json and prints its ratios beside the newest
saved run of another commit (or --compare FILE), so a change can be compared with the one before it.

The model is trained on the bundled MovieLens ml-latest-small into .bench/home on the first run.
"""
import argparse, asyncio, json, os, re, socket, subprocess, sys, time
from pathlib import Path
import numpy as np
import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def pct(xs, q): return float(np.percentile(np.asarray(xs)*1e3, q))

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def in_process(settings, n):
    from recnb.usecases import Context, production_model
    from recnb.vectorstore import open_store
    store = open_store(settings)
    m = production_model(Context(settings), store)
    users = m.user_ids[np.random.RandomState(0).randint(0, len(m.user_ids), n)]
    H = m.item_vectors()['hybrid']
    qs = [m.query_vector(m.seen.indices[m.seen.indptr[u]:m.seen.indptr[u+1]]) for u in np.searchsorted(m.user_ids, users)]
    for u in users[:200]: m.recommend(user_id=int(u), k=10)
    rec = []
    for u in users:
        t = time.perf_counter(); m.recommend(user_id=int(u), k=10); rec.append(time.perf_counter()-t)
    floor = []
    for q in qs:
        t = time.perf_counter()
        s = H @ q; top = np.argpartition(-s, 10)[:10]; top = top[np.argsort(-s[top])]
        floor.append(time.perf_counter()-t)
    store.close()
    return rec, floor, H.shape

async def _worker(port, bodies, stop_at, lat, errors):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    i = 0
    while time.perf_counter() < stop_at:
        b = bodies[i % len(bodies)]; i += 1
        req = (f"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(b)}\r\n\r\n").encode() + b
        t = time.perf_counter()
        writer.write(req); await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(int(re.search(rb'content-length: *(\d+)', head, re.I).group(1)))
        lat.append(time.perf_counter()-t)
        if not head.startswith(b'HTTP/1.1 200'): errors.append(head.split(b'\r\n')[0] + body[:200])
    writer.close()

async def _load(port, bodies, seconds, clients, warmup=1.0):
    lat, errors = [], []
    if warmup: await asyncio.gather(*[_worker(port, bodies, time.perf_counter()+warmup, [], errors) for _ in range(clients)])
    t = time.perf_counter()
    await asyncio.gather(*[_worker(port, bodies, t+seconds, lat, errors) for _ in range(clients)])
    return lat, errors, time.perf_counter()-t

def serve(cmd, env):
    port = free_port()
    p = subprocess.Popen(cmd + ['--port', str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1); return p, port
        except httpx.HTTPError: time.sleep(0.3)
    p.kill(); raise SystemExit(f"server {cmd} did not start")

def one_load(port, bodies, seconds, clients, warmup)->dict:
    lat, errors, dt = asyncio.run(_load(port, bodies, seconds, clients, warmup))
    if errors: raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]!r}")
    return dict(p50=pct(lat, 50), p99=pct(lat, 99), rps=len(lat)/dt, n=len(lat))

def http_rounds(servers:dict, bodies, seconds, clients, rounds)->list[dict]:
    "Start every server of `servers` (name: (cmd, env)), then load each in turn for `seconds`, `rounds` times."
    procs = {}
    try:
        for n, (cmd, env) in servers.items(): procs[n] = serve(cmd, env)
        out = []
        for i in range(rounds):
            names = list(servers) if i % 2 == 0 else list(servers)[::-1]
            out.append({n: one_load(procs[n][1], bodies, seconds, clients, warmup=1.0 if i == 0 else 0.2) for n in names})
        return out
    finally:
        for p, _ in procs.values(): p.terminate()
        for p, _ in procs.values(): p.wait(20)

def median(xs): return float(np.median(xs))

TARGETS = {  # name: (what it is, the target, whether higher is better)
    'in_process_vs_numpy': ('in-process recommend p50 / numpy top-10 p50', 2.5, False),
    'rps_vs_bare': ('recnb / bare requests/s, one worker each', 0.40, True),
    'rps_2_workers_vs_bare': ('recnb --workers 2 / bare (one worker) requests/s', 0.5, True),
    'p99_ms': ('recnb p99 ms, 8 clients, one worker', 25, False),
    'monitoring_p50': ('p50 with / without monitoring and logging', 1.05, False),
}

def commit()->str:
    "The commit measured, `+dirty` when the work tree has changes."
    try:
        c = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return c + ('+dirty' if dirty else '')
    except (OSError, subprocess.CalledProcessError): return 'unknown'

def previous(results:Path, this:str)->dict|None:
    "The newest saved result of another commit, if any."
    runs = sorted((json.loads(p.read_text()) for p in results.glob('serving-*.json')), key=lambda r: r['time'])
    runs = [r for r in runs if r['commit'] != this]
    return runs[-1] if runs else None

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--home', type=Path, default=ROOT/'.bench'/'home')
    ap.add_argument('--requests', type=int, default=3000, help='in-process requests')
    ap.add_argument('--seconds', type=float, default=2.5, help='HTTP load per server in each round')
    ap.add_argument('--rounds', type=int, default=6, help='rounds of load over the four servers')
    ap.add_argument('--clients', type=int, default=8)
    ap.add_argument('--results', type=Path, default=ROOT/'.bench'/'results', help='where each run saves serving-COMMIT.json')
    ap.add_argument('--compare', type=Path, help='a saved result to compare with (default: the newest of another commit)')
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from recnb.config import Settings
    from recnb.usecases import Context, promote_if_none, train
    s = Settings(home=a.home, mlflow_mirror=False)
    ctx = Context(s)
    if not ctx.registry.models():
        print(f"training a model on the bundled data into {a.home} ...")
        train(ctx)
    promote_if_none(ctx)
    rec, floor, shape = in_process(s, a.requests)
    env = {**os.environ, 'RECNB_HOME': str(a.home), 'HF_HUB_OFFLINE': '1'}
    users = [int(u) for u in np.random.RandomState(1).randint(1, 611, 500)]
    bodies = [json.dumps({'user_id': u, 'k': 10}).encode() for u in users]
    cmd = [str(BIN/'recnb'), 'serve']
    off = {**env, 'RECNB_MONITORING': 'false', 'RECNB_LOG_LEVEL': 'WARNING'}
    rounds = http_rounds({'recnb': (cmd, env), 'recnb, no monitoring': (cmd, off), 'recnb --workers 2': (cmd + ['--workers', '2'], env),
                          'bare': ([str(BIN/'uvicorn'), '--app-dir', str(ROOT/'bench'), 'bare_app:app'], env)},
                         bodies, a.seconds, a.clients, a.rounds)
    http = {n: dict(p50=median([r[n]['p50'] for r in rounds]), p99=median([r[n]['p99'] for r in rounds]),
                    rps=median([r[n]['rps'] for r in rounds]), n=sum(r[n]['n'] for r in rounds)) for n in rounds[0]}
    def within(f): return median([f(r) for r in rounds])  # the ratio in each round, its median over the rounds
    ratios = dict(in_process_vs_numpy=pct(rec, 50)/pct(floor, 50), rps_vs_bare=within(lambda r: r['recnb']['rps']/r['bare']['rps']),
                  rps_2_workers_vs_bare=within(lambda r: r['recnb --workers 2']['rps']/r['bare']['rps']), p99_ms=http['recnb']['p99'],
                  monitoring_p50=within(lambda r: r['recnb']['p50']/r['recnb, no monitoring']['p50']))
    this = commit()
    result = dict(commit=this, time=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), clients=a.clients, seconds=a.seconds, rounds=a.rounds,
                  catalog=dict(items=shape[0], dims=shape[1]),
                  in_process=dict(recommend_p50_ms=pct(rec, 50), recommend_p99_ms=pct(rec, 99), numpy_p50_ms=pct(floor, 50), n=len(rec)),
                  http=http, http_rounds=rounds, ratios=ratios)
    print(f"catalog: {shape[0]} items, hybrid vectors of {shape[1]} dimensions; commit {this}")
    print(f"in process, {len(rec)} requests: recommend p50 {pct(rec, 50):.3f} ms p99 {pct(rec, 99):.3f} ms; "
          f"numpy exact top-10 p50 {pct(floor, 50):.3f} ms")
    for n, x in http.items():
        print(f"HTTP {a.clients} clients, {n:<20}: p50 {x['p50']:.2f} ms  p99 {x['p99']:.2f} ms  {x['rps']:.0f} req/s "
              f"(medians of {a.rounds} rounds of {a.seconds:g} s, {x['n']} requests)")
    before = json.loads(a.compare.read_text()) if a.compare else previous(a.results, this)
    print(f"\n{'ratio':<48} {'this run':>9} {'target':>8}  {'met':<4}" + (f" {'at ' + before['commit']:>16}" if before else ''))
    for key, (what, target, higher) in TARGETS.items():
        v = ratios[key]; ok = v >= target if higher else v <= target
        was = f" {before['ratios'][key]:>16.2f}" if before and key in before['ratios'] else ''
        print(f"{what:<48} {v:>9.3f} {('>= ' if higher else '<= ') + str(target):>8}  {'yes' if ok else 'NO':<4}{was}")
    a.results.mkdir(parents=True, exist_ok=True)
    out = a.results/f"serving-{this}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"saved {out}")

if __name__ == '__main__': main()
