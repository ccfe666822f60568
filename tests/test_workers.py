"`recnb serve --workers 2`: Prometheus counts summed over the workers, whole log lines, and every worker swaps on a promotion."
import json, time
import httpx, pytest
from prometheus_client.parser import text_string_to_metric_families
from conftest import Server, env_for, recnb

def count(text, **labels):
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == 'recnb_requests_total' and all(smp.labels.get(k) == v for k,v in labels.items()): return smp.value
    return 0.

def worker(request_id:str)->str: return request_id[:16]  # a server-made request id starts with its process's prefix

def log_lines(home)->list[dict]:
    "Every line of every log file, parsed: a torn line fails here."
    return [json.loads(l) for f in sorted((home/'logs').glob('recnb.log*')) for l in f.read_text().splitlines()]

@pytest.fixture(scope='module')
def two(home, tmp_path_factory):
    prom = tmp_path_factory.mktemp('prometheus')
    env = env_for(home, RECNB_REGISTRY_POLL_SECONDS=0.2, RECNB_LOG_MAX_BYTES=20000, RECNB_LOG_BACKUPS=1000, PROMETHEUS_MULTIPROC_DIR=prom)
    s = Server(env, home/'workers.log', args=('--workers', '2'))
    yield s
    s.stop()
    recnb('models', 'promote', 'movielens', '1.0.0', '--reason', 'back to the session default', env=env_for(home))

def ask(url, n, user=1)->list[dict]:
    "`n` requests, each on a new connection, so the kernel hands them to either worker."
    out = []
    for i in range(n):
        r = httpx.post(url + '/recommend', json={'user_id': user + i % 500, 'k': 5}, timeout=30)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out

def test_counts_and_log_lines_over_two_workers(two, home):
    got = ask(two.url, 300)
    ids = [r['request_id'] for r in got]
    assert len({worker(i) for i in ids}) == 2, 'both workers answered'
    deadline = time.time() + 10
    while time.time() < deadline and count(httpx.get(two.url + '/metrics').text, endpoint='/recommend', status='200') < 300: time.sleep(0.2)
    time.sleep(0.5)
    for _ in range(4):  # whichever worker answers the scrape, the sum over both
        assert count(httpx.get(two.url + '/metrics').text, endpoint='/recommend', status='200') == 300
    lines = log_lines(home)
    mine = [l['request_id'] for l in lines if l.get('message') == 'request' and l.get('request_id') in set(ids)]
    assert sorted(mine) == sorted(ids)  # each request logged exactly once, no line lost
    assert len(list((home/'logs').glob('recnb.log.*'))) > 2  # and the shared file rotated on the way

def test_every_worker_swaps_on_promotion(two, home):
    assert {r['model_version'] for r in ask(two.url, 20)} == {'1.0.0'}
    recnb('models', 'promote', 'movielens', '1.0.1', '--reason', 'workers test', env=env_for(home))
    new, deadline = set(), time.time() + 120
    while len(new) < 2 and time.time() < deadline:
        new |= {worker(r['request_id']) for r in ask(two.url, 10) if r['model_version'] == '1.0.1'}
    assert len(new) == 2, 'both workers serve 1.0.1'
    after = ask(two.url, 40)
    assert {r['model_version'] for r in after} == {'1.0.1'}
