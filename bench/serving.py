"""Latency and throughput of recnb's recommendations, each against a floor measured in the same run.

1. In process: `HybridRecommender.recommend(user_id=...)` (Qdrant search with the user's seen items
   excluded, titles attached) against an exact numpy top-10 over the same item vectors.
2. Over HTTP on loopback with 8 concurrent keep-alive clients: `POST /recommend` served by
   `recnb serve` (uvicorn, the real app) against a bare FastAPI endpoint returning a fixed payload,
   under uvicorn with the same (default) settings, access log included. Targets: p99 <= 40 ms and at
   least 25% of the bare endpoint's requests/s. recnb is also run with monitoring and logging
   switched off (RECNB_MONITORING=false, RECNB_LOG_LEVEL=WARNING): with them on, p50 at most 10% higher.

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
    from recnb.usecases import production_model
    from recnb.vectorstore import open_store
    store = open_store(settings)
    m = production_model(settings, store)
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

async def _load(port, bodies, seconds, clients):
    lat, errors = [], []
    await asyncio.gather(*[_worker(port, bodies, time.perf_counter()+1, [], errors) for _ in range(clients)])  # warm-up
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

def http_run(cmd, env, bodies, seconds, clients):
    p, port = serve(cmd, env)
    try: lat, errors, dt = asyncio.run(_load(port, bodies, seconds, clients))
    finally: p.terminate(); p.wait(20)
    if errors: raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]!r}")
    return dict(p50=pct(lat, 50), p99=pct(lat, 99), rps=len(lat)/dt, n=len(lat))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--home', type=Path, default=ROOT/'.bench'/'home')
    ap.add_argument('--requests', type=int, default=3000, help='in-process requests')
    ap.add_argument('--seconds', type=float, default=8, help='HTTP load per server')
    ap.add_argument('--clients', type=int, default=8)
    a = ap.parse_args()
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from recnb.config import Settings
    from recnb.usecases import promote_if_none, train
    from recnb.registry import Registry
    s = Settings(home=a.home, mlflow_mirror=False)
    if not Registry.from_settings(s).models():
        print(f"training a model on the bundled data into {a.home} ...")
        train(s)
    promote_if_none(s)
    rec, floor, shape = in_process(s, a.requests)
    env = {**os.environ, 'RECNB_HOME': str(a.home), 'HF_HUB_OFFLINE': '1'}
    users = [int(u) for u in np.random.RandomState(1).randint(1, 611, 500)]
    bodies = [json.dumps({'user_id': u, 'k': 10}).encode() for u in users]
    recnb = http_run([str(BIN/'recnb'), 'serve'], env, bodies, a.seconds, a.clients)
    quiet = http_run([str(BIN/'recnb'), 'serve'], {**env, 'RECNB_MONITORING': 'false', 'RECNB_LOG_LEVEL': 'WARNING'}, bodies, a.seconds, a.clients)
    bare = http_run([str(BIN/'uvicorn'), '--app-dir', str(ROOT/'bench'), 'bare_app:app'], env, bodies, a.seconds, a.clients)
    print(f"catalog: {shape[0]} items, hybrid vectors of {shape[1]} dimensions")
    print(f"in process, {len(rec)} requests: recommend p50 {pct(rec, 50):.3f} ms p99 {pct(rec, 99):.3f} ms; "
          f"numpy exact top-10 p50 {pct(floor, 50):.3f} ms")
    for n,r in (('recnb /recommend', recnb), ('recnb, no monitoring', quiet), ('bare endpoint', bare)):
        print(f"HTTP {a.clients} clients, {n:<20}: p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  {r['rps']:.0f} req/s ({r['n']} requests)")
    print(f"ratio in-process recommend p50 / numpy top-10 p50: {pct(rec, 50)/pct(floor, 50):.2f} (target <= 5)")
    print(f"ratio recnb / bare requests/s: {recnb['rps']/bare['rps']:.2f} (target >= 0.25); recnb p99 {recnb['p99']:.1f} ms (target <= 40)")
    print(f"ratio p50 with / without monitoring and logging: {recnb['p50']/quiet['p50']:.2f} (target <= 1.10)")

if __name__ == '__main__': main()
