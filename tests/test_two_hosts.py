"""Two API hosts that share no filesystem: `recnb serve` twice, each with a RECNB_HOME of its own, one
PostgreSQL (RECNB_STORE_URL) for what they share and one `mlflow server` for the versions' files.
A version trained on host A and promoted through host B's API is served by both; events posted to A
change B's answers; a file ingested on A is refused on B; concurrent promotions and rollbacks from both leave one production version and
a complete audit log; `recnb retrain` started on both at once runs one job; and a PostgreSQL restart
under traffic costs no answer, only writes, and only while it is down."""
import json, subprocess, threading, time
import httpx, pytest
from conftest import API_KEY, BIN, Server, env_for, free_port, recnb, registry_at, start_mlflow
from recnb.registry import files_digest
from recnb.synthetic import synthetic_dataset, write_synthetic

KEY = {'X-API-Key': API_KEY}

@pytest.fixture(scope='module')
def hosts(postgres, tmp_path_factory):
    root = tmp_path_factory.mktemp('two-hosts')
    url = postgres.create_db('two_hosts', template='recnb_template')
    port = free_port()
    mlflow_server = start_mlflow(root/'mlflow', port)
    data = synthetic_dataset(400, 300, 6000, seed=3)  # small: these tests are about what the hosts share
    env = {}
    for h in 'ab':
        # each host its own home and its own copy of the data: nothing on disk is shared
        env[h] = env_for(root/h/'home', RECNB_DATA_DIR=write_synthetic(root/h/'movielens', *data), RECNB_STORE_URL=url,
                         MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", RECNB_API_KEY=API_KEY, RECNB_REGISTRY_POLL_SECONDS=0.2)
    recnb('train', '--quiet', env=env['a']); recnb('train', '--quiet', env=env['a'])  # 1.0.0 and 1.0.1, on host A
    servers = {h: Server(env[h], root/h/'server.log', ready='/livez') for h in 'ab'}
    yield dict(root=root, url=url, env=env, a=servers['a'].url, b=servers['b'].url, postgres=postgres)
    for s in servers.values(): s.stop()
    mlflow_server.terminate(); mlflow_server.wait(30)

def rec(url, body):
    r = httpx.post(url + '/recommend', json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()['model_version'], [x['item_id'] for x in r.json()['items']]

def until(f, what, timeout=60):
    t0 = time.time()
    while not (v := f()):
        assert time.time() - t0 < timeout, what
        time.sleep(0.05)
    return v

def test_trained_on_a_promoted_through_b_served_by_both(hosts):
    a, b, root = hosts['a'], hosts['b'], hosts['root']
    assert httpx.post(b + '/recommend', json={'user_id': 1}).status_code == 503  # nothing in production yet
    r = httpx.post(b + '/models/movielens/versions/1.0.0/promote', headers=KEY, json={'actor': 'test', 'reason': 'from host B'}, timeout=120)
    assert r.status_code == 200 and r.json()['stage'] == 'production', r.text
    assert rec(b, {'user_id': 1})[0] == '1.0.0'  # B swapped before answering
    until(lambda: httpx.post(a + '/recommend', json={'user_id': 1}).status_code == 200, 'host A never served the version B promoted')
    # B fetched the version's files from MLflow into its own home, and built its own index of them
    assert (root/'b'/'home'/'models'/'movielens'/'1.0.0'/'model.json').exists()
    assert not (root/'b'/'home'/'registry'/'registry.json').exists() and not (root/'a'/'home'/'registry'/'registry.json').exists()
    want = registry_at(hosts['url']).get('movielens', '1.0.0')['files_sha256']  # recorded on A when it saved them
    assert files_digest(root/'b'/'home'/'models'/'movielens'/'1.0.0') == files_digest(root/'a'/'home'/'models'/'movielens'/'1.0.0') == want
    for body in ({'user_id': u, 'k': 10} for u in range(1, 8)):
        assert rec(a, body) == rec(b, body)

def test_events_posted_to_a_change_answers_on_b(hosts):
    a, b = hosts['a'], hosts['b']
    _, before = rec(b, {'user_id': 5, 'k': 10})
    liked = [i for i in rec(b, {'user_id': 9, 'k': 30})[1] if i not in before][:8]  # another user's taste
    r = httpx.post(a + '/events', headers=KEY, json={'events': [dict(user_id=5, item_id=i, rating=5., event_id=f"two-hosts-{i}") for i in liked]}, timeout=30)
    assert r.status_code == 200 and r.json()['accepted'] == len(liked), r.text
    after = until(lambda: (x := rec(b, {'user_id': 5, 'k': 10})[1]) != before and x, "B's answers never took the events posted to A")
    assert not set(liked) & set(after)  # seen now, so excluded
    assert until(lambda: rec(a, {'user_id': 5, 'k': 10})[1] == rec(b, {'user_id': 5, 'k': 10})[1], 'A and B answer differently')
    again = httpx.post(b + '/events', headers=KEY, json={'events': [dict(user_id=5, item_id=i, rating=5., event_id=f"two-hosts-{i}") for i in liked]}, timeout=30)
    assert again.status_code == 200 and again.json()['duplicates'] == len(liked), again.text  # a retry through the other host adds nothing

def test_a_file_ingested_on_a_is_refused_on_b(hosts):
    items = rec(hosts['b'], {'user_id': 7, 'k': 3})[1]
    f = hosts['root']/'day2.csv'
    f.write_text('user_id,item_id,rating,timestamp\n' + ''.join(f"7,{i},4.0,{1_700_000_000 + n}\n" for n, i in enumerate(items)))
    assert 'ingested 3 interactions' in recnb('ingest', str(f), env=hosts['env']['a']).stdout
    again = recnb('ingest', str(f), env=hosts['env']['b'], check=False)  # B has no copy of A's files: the store holds the log
    assert again.returncode == 2 and 'this content was already ingested (3 rows from' in again.stderr, again.stderr

def test_concurrent_promotions_and_rollbacks_from_both_hosts(hosts):
    a, b = hosts['a'], hosts['b']
    start = len(httpx.get(a + '/models/movielens/history').json())
    done, wrong, lock = [], [], threading.Lock()
    def host(url, calls):
        with httpx.Client(timeout=120, headers=KEY) as c:
            for path in calls:
                r = c.post(url + path, json={'actor': url})
                with lock:
                    if r.status_code == 200: done.append(r.json()['version'])
                    elif r.status_code != 409: wrong.append((url + path, r.status_code, r.text))  # 409: nothing to roll back to
    promote_1, rollback = '/models/movielens/versions/1.0.1/promote', '/models/movielens/rollback'
    threads = [threading.Thread(target=host, args=(a, [promote_1, rollback]*4)),
               threading.Thread(target=host, args=(b, [rollback, promote_1]*4))]
    for t in threads: t.start()
    for t in threads: t.join()
    assert not wrong and len(done) >= 8, (wrong, done)
    m = httpx.get(b + '/models/movielens').json()
    prod = [v for v, e in m['versions'].items() if e['stage'] == 'production']
    assert prod == [m['production']], m
    h = httpx.get(a + '/models/movielens/history').json()
    seqs = [e['seq'] for e in registry_at(hosts['url']).audit()]
    assert seqs == list(range(1, len(seqs) + 1))  # the whole audit log: nothing lost, nothing written twice
    served = None  # the audit log replayed: never two versions in production at once, and it ends where the registry is
    for e in h:
        if e['to_stage'] == 'production': assert served is None, (served, e); served = e['version']
        elif e['version'] == served: served = None
    assert served == m['production']
    assert set(done) <= {e['version'] for e in h[start:] if e['to_stage'] == 'production'} | {h[start-1]['version']}, (done, h[start:])
    assert len([e for e in h[start:] if e['to_stage'] == 'production']) >= 2  # both hosts changed it
    for url in (a, b): until(lambda: rec(url, {'user_id': 1})[0] == m['production'], f'{url} does not serve the production version')

def test_retrain_started_on_both_hosts_runs_one_job(hosts):
    env = hosts['env']
    ps = [subprocess.Popen([str(BIN/'recnb'), 'retrain', '--force', '--json', '--reason', f'from host {h}'], env=env[h],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for h in 'ab']
    out = [p.communicate(timeout=900) for p in ps]
    codes = sorted(p.returncode for p in ps)
    assert codes == [0, 1], out
    refused = out[[p.returncode for p in ps].index(1)][1]
    assert 'another retraining job is running' in refused, refused
    jobs = [j for j in httpx.get(hosts['b'] + '/jobs').json() if j['kind'] == 'retrain' and j['state'] != 'skipped']
    assert len(jobs) == 1 and jobs[0]['state'] == 'succeeded', jobs

def test_postgres_restart_under_traffic(hosts):
    a, b, pg = hosts['a'], hosts['b'], hosts['postgres']
    stop, results = threading.Event(), []
    def load(url):
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try: results.append(c.post(url + '/recommend', json={'user_id': 3, 'k': 10}).status_code)
                except httpx.HTTPError as e: results.append(repr(e))
    threads = [threading.Thread(target=load, args=(u,)) for u in (a, b)]
    for t in threads: t.start()
    try:
        time.sleep(0.5)
        pg.stop()
        try:
            time.sleep(1)  # a registry poll or more on each host meets the store down
            r = httpx.post(a + '/events', headers=KEY, json={'events': [dict(user_id=3, item_id=1)]}, timeout=60)
            assert r.status_code == 503 and 'store' in r.json()['detail'], r.text
            r = httpx.post(b + '/models/movielens/rollback', headers=KEY, json={}, timeout=60)
            assert r.status_code == 503 and 'store' in r.json()['detail'], r.text
            n_down = len(results)
        finally: pg.start()
        r = until(lambda: (x := httpx.post(a + '/events', headers=KEY, json={'events': [dict(user_id=3, item_id=1)]}, timeout=60)).status_code == 200 and x,
                  'writes did not work again after PostgreSQL came back')
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads: t.join()
    assert n_down > 0 and set(results) == {200}, [x for x in results if x != 200][:5]
