"The registry over HTTP on the real server: hot swap under load, and bad input."
import threading, time
import httpx
from conftest import API_KEY
from recnb.registry import Registry

KEY = {'X-API-Key': API_KEY}

def test_hot_swap_under_load(server):
    url, stop, results = server.url, threading.Event(), []
    def load():
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    sent = time.monotonic()
                    r = c.post(url + '/recommend', json={'user_id': 1 + i % 600, 'k': 10})
                    results.append((sent, r.status_code, r.json().get('model_version') if r.status_code == 200 else r.text))
                except httpx.HTTPError as e: results.append((sent, 0, repr(e)))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads: t.start()
    try:
        time.sleep(1)
        r = httpx.post(url + '/models/movielens/versions/1.0.1/promote', headers=KEY, json={'actor': 'test', 'reason': 'hot swap'}, timeout=60)
        assert r.status_code == 200 and r.json()['stage'] == 'production', r.text
        t_promoted = time.monotonic()
        time.sleep(1.5)
        t_rollback = time.monotonic()
        r = httpx.post(url + '/models/movielens/rollback', headers=KEY, json={'actor': 'test'}, timeout=60)
        assert r.status_code == 200 and r.json()['version'] == '1.0.0', r.text
        t_rolled = time.monotonic()
        time.sleep(1)
    finally:
        stop.set()
        for t in threads: t.join()
    failed = [x for x in results if x[1] != 200]
    assert not failed, failed[:5]
    assert len(results) > 100
    versions = [v for _, _, v in results]
    assert versions[0] == '1.0.0' and versions[-1] == '1.0.0'
    # what the swap promises: a request sent after a promotion or rollback was answered is served by what it put in production
    # (one sent before may still be answered by the model it started with, however long a loaded host takes)
    assert {v for t, _, v in results if t_promoted < t < t_rollback} == {'1.0.1'}
    assert {v for t, _, v in results if t > t_rolled} == {'1.0.0'}
    assert httpx.get(url + '/models/movielens/production').json()['version'] == '1.0.0'
    h = httpx.get(url + '/models/movielens/history').json()
    assert [(e['version'], e['to_stage']) for e in h[-4:]] == [('1.0.0', 'archived'), ('1.0.1', 'production'), ('1.0.1', 'archived'), ('1.0.0', 'production')]

def test_registry_reads(server):
    assert httpx.get(server.url + '/models').json()[0]['name'] == 'movielens'
    m = httpx.get(server.url + '/models/movielens').json()
    assert set(m['versions']) >= {'1.0.0', '1.0.1'}
    assert m['versions']['1.0.0']['data_fingerprint'] and m['versions']['1.0.0']['collection'] == 'movielens-1.0.0'

def test_registry_bad_input(server):
    u = server.url
    assert httpx.get(u + '/models/nope').status_code == 404
    assert httpx.get(u + '/models/nope/production').status_code == 404
    r = httpx.post(u + '/models/movielens/versions/9.9.9/promote', headers=KEY)
    assert r.status_code == 404 and '9.9.9' in r.json()['detail']
    r = httpx.post(u + '/models/movielens/versions/1.0/promote', headers=KEY)
    assert r.status_code == 422 and 'invalid version' in r.text
    for path in ('/models/a%2Fb', '/models/..%2Fetc/production', '/models/%2E%2E/history'):
        assert httpx.get(u + path).status_code == 422, path
    assert httpx.post(u + '/models/..%2Fx/rollback', headers=KEY).status_code == 422
    assert httpx.post(u + '/models/movielens/versions/1.0.1/promote').status_code == 401
    assert httpx.post(u + '/models/movielens/rollback', headers={'X-API-Key': 'wrong'}).status_code == 401

def test_illegal_transition_is_409(server, home):
    reg = Registry(home/'registry')
    v = reg.register('movielens', params=reg.get('movielens', '1.0.0')['params'], embedding_model='all-MiniLM-L6-v2', reason='stays in training')
    try:
        r = httpx.post(server.url + f"/models/movielens/versions/{v['version']}/promote", headers=KEY)
        assert r.status_code == 409 and 'cannot move from training to production' in r.json()['detail']
    finally: reg.transition('movielens', v['version'], 'archived', reason='test done')
    assert httpx.get(server.url + '/models/movielens/production').json()['version'] == '1.0.0'
