"""The live catalogue over HTTP against `recnb serve`: items added between retrains are served at once,
withdrawn ones never, events change a user's answers and survive a restart, bad bodies write nothing;
and a SIGKILL in the middle of appending events loses none that were acknowledged."""
import json, os, random, signal, subprocess, sys, time
import httpx, pandas as pd, pytest
from recnb.config import Settings
from recnb.data import catalogue_path, current_data, ingested_path, load_movielens
from conftest import serving_copy, API_KEY, BIN, Server, env_for, recnb

KEY = {'X-API-Key': API_KEY}
ZORBLAX = dict(item_id=900001, title='Zorblax the Quantum Llama (2031)', genres='Sci-Fi|Comedy', tags='space llama|quantum')

@pytest.fixture(scope='module')
def live(home, tmp_path_factory):
    "`recnb serve` on a copy of the trained home (its catalogue and interactions change here), polling every 0.2 s."
    with serving_copy(home, tmp_path_factory.mktemp('live'), RECNB_API_KEY=API_KEY) as ctx: yield ctx

def rec(s, body):
    r = httpx.post(s.url + '/recommend', json=body, timeout=30)
    assert r.status_code == 200, r.text
    return [x['item_id'] for x in r.json()['items']], r.json()

def test_added_item_is_served_by_the_next_request(live):
    s, h, env = live['server'], live['home'], live['env']
    assert 900001 not in rec(s, {'query': 'Zorblax the Quantum Llama', 'k': 10})[0]
    t0 = time.time()
    r = httpx.post(s.url + '/items', json={'items': [ZORBLAX]}, headers=KEY, timeout=30)
    ids, j = rec(s, {'query': 'Zorblax the Quantum Llama', 'k': 10})  # no wait: the worker applied it before answering
    print(f"added item served {time.time()-t0:.3f} s after the call began")
    assert r.status_code == 200 and r.json()['added'] == 1 and r.json()['model_version'] == '1.0.0', r.text
    assert ids[0] == 900001 and j['items'][0]['title'] == ZORBLAX['title'], j
    reg = json.loads((h/'registry'/'registry.json').read_text())
    assert reg['models']['movielens']['versions']['1.0.0']['catalogue']['revision'] == r.json()['revision']
    audit = [json.loads(l) for l in (h/'registry'/'audit.jsonl').read_text().splitlines()]
    assert audit[-1]['reason'].startswith(f"catalogue revision {r.json()['revision']}: 1 added"), audit[-1]
    assert rec(s, {'items': [900001], 'k': 5})[1]['items']  # a request may name it: it has vectors

def test_item_added_by_another_process_reaches_the_service(live):
    s, h, env, root = live['server'], live['home'], live['env'], live['root']
    f = root/'more.csv'
    pd.DataFrame([dict(item_id=900002, title='Blorptastic Submarine Opera (2032)', genres='Musical')]).to_csv(f, index=False)
    out = recnb('items', 'add', str(f), env=env).stdout
    assert '1 added' in out and 'recorded on movielens 1.0.0' in out, out
    t0 = time.time()
    while 900002 not in rec(s, {'query': 'Blorptastic Submarine Opera', 'k': 3})[0]:
        assert time.time() - t0 < 30, 'the service did not pick up the CLI change'
        time.sleep(0.05)
    print(f"the service served an item added by `recnb items add` {time.time()-t0:.2f} s after the command returned")

def test_withdrawn_items_never_appear_and_can_come_back(live):
    s, h, env = live['server'], live['home'], live['env']
    httpx.post(s.url + '/items', json={'items': [ZORBLAX]}, headers=KEY, timeout=30)
    r = httpx.post(s.url + '/items/withdraw', json={'item_ids': [900001, 1, 260]}, headers=KEY, timeout=30)
    assert r.status_code == 200 and r.json()['withdrawn'] >= 3, r.text
    answers = [rec(s, {'query': q, 'k': 50})[0] for q in ('Zorblax the Quantum Llama', 'animated movie about toys', 'Star Wars')]
    answers += [rec(s, {'user_id': u, 'k': 100})[0] for u in (1, 2, 3, 4, 5, 999999)]  # 999999: the popular fallback
    answers += [rec(s, {'items': [2571, 1196], 'k': 100})[0]]
    answers += [rec(s, {'user_id': 5, 'k': 100, 'filters': {'genres': ['Sci-Fi']}})[0]]
    for ids in answers: assert not {900001, 1, 260} & set(ids), ids
    assert httpx.post(s.url + '/items/restore', json={'item_ids': [1, 900001, 260]}, headers=KEY, timeout=30).status_code == 200
    assert 1 in rec(s, {'query': 'animated movie about toys', 'k': 10})[0]
    assert rec(s, {'query': 'Zorblax the Quantum Llama', 'k': 3})[0][0] == 900001

def _horror_for(user):
    items, ratings = load_movielens()
    seen = set(ratings.item_id[ratings.user_id == user])
    pop = ratings.item_id.value_counts()
    horror = items[items.genres.str.contains('Horror') & ~items.item_id.isin(seen)].item_id
    return pop.reindex(horror).sort_values(ascending=False).index[:5].tolist()

def test_events_change_answers_and_survive_a_restart(live):
    s, h, env, root = live['server'], live['home'], live['env'], live['root']
    before = rec(s, {'user_id': 1, 'k': 10})[0]
    events = [dict(user_id=1, item_id=i, rating=5.) for i in _horror_for(1)]
    r = httpx.post(s.url + '/events', json={'events': events}, headers=KEY, timeout=30)
    assert r.status_code == 200 and r.json() == {'accepted': 5, 'users': 1, 'duplicates': 0}, r.text
    after = rec(s, {'user_id': 1, 'k': 10})[0]
    assert after != before and not {e['item_id'] for e in events} & set(after), (before, after)
    new_user = rec(s, {'user_id': 777777, 'k': 5})[1]
    assert new_user['cold_start']
    httpx.post(s.url + '/events', json={'events': [dict(user_id=777777, item_id=1), dict(user_id=777777, item_id=3114)]}, headers=KEY, timeout=30)
    personal = rec(s, {'user_id': 777777, 'k': 5})
    assert not personal[1]['cold_start'] and personal[0] == rec(s, {'items': [1, 3114], 'k': 5})[0]
    s.stop()
    s2 = live['server'] = Server(env, root/'server2.log')
    assert rec(s2, {'user_id': 1, 'k': 10})[0] == after
    assert rec(s2, {'user_id': 777777, 'k': 5})[0] == personal[0]
    assert rec(s2, {'query': 'Zorblax the Quantum Llama', 'k': 1})[0] == [900001]  # the catalogue too

def test_bad_bodies_are_422_naming_the_field_and_write_nothing(live):
    s, h, env = live['server'], live['home'], live['env']
    files = [catalogue_path(Settings(home=h)), ingested_path(Settings(home=h))]
    before = [f.read_bytes() if f.exists() else None for f in files]
    bad = [('/items', {'items': [dict(ZORBLAX, item_id=900010), dict(ZORBLAX, item_id=900010)]}, ['body', 'items', 1, 'item_id']),
           ('/items', {'items': [dict(ZORBLAX, item_id=900011, colour='red')]}, ['body', 'items', 0, 'colour']),
           ('/items', {'items': [dict(ZORBLAX, item_id=900012, year=1200)]}, ['body', 'items', 0, 'year']),
           ('/items/withdraw', {'item_ids': [1, 987654321]}, ['body', 'item_ids']),
           ('/events', {'events': [dict(user_id=1, item_id=1), dict(user_id=1, item_id=987654321)]}, ['body', 'events', 1, 'item_id']),
           ('/events', {'events': [dict(user_id=1, item_id=1, timestamp=int(time.time()) + 10**7)]}, ['body', 'events', 0, 'timestamp']),
           ('/events', {'events': [dict(user_id=1, item_id=1, timestamp='yesterday')]}, ['body', 'events', 0, 'timestamp']),
           ('/events', {'events': [dict(user_id=1, item_id=1, clicks=3)]}, ['body', 'events', 0, 'clicks'])]
    for path, body, loc in bad:
        r = httpx.post(s.url + path, json=body, headers=KEY, timeout=30)
        assert r.status_code == 422 and r.json()['detail'][0]['loc'] == loc, (path, body, r.text)
    assert httpx.post(s.url + '/events', json={'events': [dict(user_id=1, item_id=1)]}, timeout=30).status_code == 401
    assert [f.read_bytes() if f.exists() else None for f in files] == before

APPENDER = """
import sys, time, pandas as pd
from recnb.config import Settings
from recnb.catalogue import append_interactions
s, run, rows = Settings(home=sys.argv[1]), int(sys.argv[2]), 2000
for n in range(10**6):
    df = pd.DataFrame(dict(user_id=[100000 + run]*rows, item_id=[1]*rows, rating=[4.]*rows, timestamp=[n*rows + i for i in range(rows)]))
    append_interactions(s, df)
    print(n, flush=True)  # acknowledged: written and fsynced
"""

def test_a_kill_during_appends_loses_no_acknowledged_event(tmp_path):
    home, rng = tmp_path/'home', random.Random(0)
    script = tmp_path/'append.py'; script.write_text(APPENDER)
    acked = {}
    for run in range(8):
        out = tmp_path/f"out{run}.txt"
        with open(out, 'w') as f:
            p = subprocess.Popen([sys.executable, str(script), str(home), str(run)], stdout=f, env=env_for(home))
            time.sleep(rng.uniform(1.2, 2.2))
            p.send_signal(signal.SIGKILL); p.wait()
        acked[run] = len(out.read_text().split())  # batches it was told were written
    _, inter = current_data(Settings(home=home))  # reads: every line whole (a torn last line is skipped)
    got = inter[inter.user_id >= 100000].groupby('user_id').size()
    for run, n in acked.items():
        assert got.get(100000 + run, 0) >= n*2000, (run, n, got.get(100000 + run, 0))
    assert sum(acked.values()) > 0
