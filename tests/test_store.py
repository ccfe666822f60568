"""The store contract: the same calls give the same answers on both backends (a directory, PostgreSQL),
and what only PostgreSQL does (schema, migrations, several hosts, a server that restarts)."""
import subprocess, sys, threading, time
from pathlib import Path
import pandas as pd, pytest
from conftest import BIN, env_for, recnb, registry_at
from recnb.errors import Busy, Unavailable
from recnb.ids import IdMap
from recnb.registry import IllegalTransition, NothingToRollBack, Registry
from recnb.store import SCHEMA_HEAD, Database, FileIngested, SqlIngested, SqlRegistry, StoreUnavailable

def _model(reg, *metrics):
    for m in metrics:
        v = reg.register('m', params={'rank': 8}, metrics={'ndcg@10': m}, embedding_model='e', tags={'by': 'test'})
        reg.transition('m', v['version'], 'validation')

def test_registry_contract(registry_place):
    reg = registry_at(registry_place)
    assert (reg.models(), reg.revision(), reg.audit()) == ([], 0, [])
    _model(reg, 0.4, 0.5)
    assert [v['version'] for v in reg.search('m', stage='validation')] == ['1.0.0', '1.0.1']
    assert [v['version'] for v in reg.search('m', metric='ndcg@10>0.45')] == ['1.0.1']
    assert reg.register('m', params={'rank': 16}, embedding_model='e')['version'] == '2.0.0'  # the vector space changed: major
    reg.promote('m', '1.0.0', actor='alice', reason='first')
    reg.promote('m', '1.0.1', actor='bob', reason='better')
    assert reg.production('m')['version'] == '1.0.1' and reg.get('m', '1.0.0')['stage'] == 'archived'
    with pytest.raises(IllegalTransition, match='cannot move from training to production'): reg.promote('m', '2.0.0')
    assert reg.rollback('m', actor='carol')['version'] == '1.0.0'
    reg.record('m', '1.0.0', 'api', 'catalogue revision 1', catalogue=dict(revision=1))
    reg.update('m', '1.0.0', metrics={'hit@10': 0.9})
    v = reg.get('m', '1.0.0')
    assert (v['catalogue'], v['metrics']) == (dict(revision=1), {'ndcg@10': 0.4, 'hit@10': 0.9})
    audit = reg.audit()
    assert [e['seq'] for e in audit] == list(range(1, len(audit)+1))
    assert [(e['version'], e['from_stage'], e['to_stage'], e['actor']) for e in reg.history('m')][-4:] == [
        ('1.0.0', 'production', 'archived', 'bob'), ('1.0.1', 'validation', 'production', 'bob'),
        ('1.0.1', 'production', 'archived', 'carol'), ('1.0.0', 'archived', 'production', 'carol')]
    assert audit[-1]['fields'] == ['catalogue'] and audit[-1]['from_stage'] == audit[-1]['to_stage'] == 'production'
    assert reg.models() == [dict(name='m', production='1.0.0', versions=3, created_at=reg.get('m')['created_at'])]
    rev = reg.revision()
    reg.promote('m', '1.0.0')  # already in production: nothing written
    assert reg.revision() == rev
    reg.update('m', '1.0.0', metrics={'hit@10': 0.9})  # the same value: nothing written
    assert reg.revision() == rev

def test_a_failed_change_writes_nothing(registry_place):
    reg = registry_at(registry_place)
    _model(reg, 0.4)
    rev, n = reg.revision(), len(reg.audit())
    with pytest.raises(ValueError, match='boom'):
        with reg._txn() as (state, audit):
            state['models']['m']['versions']['1.0.0']['stage'] = 'production'; audit.append(dict(model='m', version='1.0.0'))
            raise ValueError('boom')
    assert (reg.revision(), len(reg.audit()), reg.get('m', '1.0.0')['stage']) == (rev, n, 'validation')
    with pytest.raises(NothingToRollBack): reg.rollback('m')

def test_two_hosts_see_each_other_at_once(store_url):
    "Two registries on their own connection pools (as two hosts would have): each write is seen by the other's next read."
    a, b = registry_at(store_url), registry_at(store_url)
    _model(a, 0.4, 0.5)
    assert b.revision() == a.revision() and sorted(b.get('m')['versions']) == ['1.0.0', '1.0.1']
    b.promote('m', '1.0.1', actor='host-b')
    assert a.production('m')['version'] == '1.0.1' and a.history('m')[-1]['actor'] == 'host-b'

def test_the_lock_excludes_other_hosts_and_is_reentrant(store_url):
    a, b = registry_at(store_url), Registry(backend=SqlRegistry(Database(store_url), timeout=0.3))
    with a.backend.locked():
        with a.backend.locked(): _model(a, 0.4)  # reentrant, and transactions run inside it
        with pytest.raises(Busy, match='held by another process'):
            with b.backend.locked(): pass
        t = threading.Thread(target=lambda: b.register('m', params={'rank': 8}, embedding_model='e'))  # a transaction needs no lock
        t.start(); t.join(10)
        assert not t.is_alive()
    with b.backend.locked(): pass  # released
    assert sorted(a.get('m')['versions']) == ['1.0.0', '1.0.1']

def test_schema_checks_and_migrations(postgres, tmp_path):
    url = postgres.create_db('fresh')
    with pytest.raises(StoreUnavailable, match=r'has schema 0, this recnb needs \d+: run `recnb db upgrade`'): Database(url).check()
    env = env_for(tmp_path, RECNB_STORE_URL=url)
    r = recnb('models', 'list', env=env, check=False)  # a CLI on an old schema stops with one line
    assert r.returncode == 1 and r.stderr.strip().count('\n') == 0 and 'run `recnb db upgrade`' in r.stderr, r.stderr
    assert 'schema 0' in recnb('db', 'status', env=env).stdout
    procs = [subprocess.Popen([str(BIN/'recnb'), 'db', 'upgrade'], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(60) for p in procs]
    assert [p.returncode for p in procs] == [0]*3, outs
    assert sum(o.count('applied migration') for o, _ in outs) == SCHEMA_HEAD  # each migration once, whoever ran it
    assert recnb('db', 'upgrade', env=env).stdout.strip().endswith('already up to date')
    assert f'schema {SCHEMA_HEAD}; this recnb needs {SCHEMA_HEAD}' in recnb('db', 'status', env=env).stdout
    assert Database(url).check().schema() == SCHEMA_HEAD
    postgres.psql(f'INSERT INTO recnb_schema (version, description) VALUES ({SCHEMA_HEAD+1}, \'from the future\')', db='fresh')
    with pytest.raises(StoreUnavailable, match='newer than this recnb'): Database(url).check()

def test_a_password_never_reaches_a_message(postgres, tmp_path):
    url = postgres.url('nodb').replace('postgres@', 'postgres:s3cret-pw@')
    with pytest.raises(Unavailable) as e: Database(url).check()
    assert 's3cret-pw' not in str(e.value) and '***' in str(e.value)
    r = recnb('models', 'list', env=env_for(tmp_path, RECNB_STORE_URL=url), check=False)
    assert r.returncode == 1 and 's3cret-pw' not in r.stderr + r.stdout, r.stderr

def test_a_restarted_server_is_unavailable_then_back(postgres, store_url):
    reg = registry_at(store_url)
    _model(reg, 0.4)
    postgres.stop()
    try:
        with pytest.raises(StoreUnavailable, match='cannot be reached'): reg.revision()
        with pytest.raises(StoreUnavailable): reg.promote('m', '1.0.0')
    finally: postgres.start()
    reg.promote('m', '1.0.0')  # the pool replaces the connections the restart cut
    assert reg.production('m')['version'] == '1.0.0'

def jobs_at(where:str):
    from recnb.jobs import Jobs
    from recnb.store import SqlJobs
    return Jobs(backend=SqlJobs(Database(where))) if '://' in where else Jobs(where)

def test_jobs_contract(registry_place):
    from filelock import Timeout
    js = jobs_at(registry_place)
    assert js.list() == [] and js.running() == []
    a = js.new(reason='first', trigger='cli'); b = js.new(reason='second', trigger='http')
    assert [j['id'] for j in js.list()] == sorted([a['id'], b['id']], reverse=True)
    js.update(a, state='running'); js.update(a, state='succeeded', version='1.0.1')
    got = js.get(a['id'])
    assert (got['state'], got['version'], got['duration_s'] is not None) == ('succeeded', '1.0.1', True)
    assert [j['id'] for j in js.running()] == [b['id']]
    with pytest.raises(KeyError, match='no job'): js.get('20200101T000000Z-abcdef')
    with js.lock():
        with pytest.raises(Timeout): js.lock().acquire()
        assert js.update(b, state='running') and js.reap() == []  # the lock is held: b's process is alive
    assert [j['id'] for j in js.reap()] == [b['id']] and js.get(b['id'])['state'] == 'failed'

HOLDER = '''
import sys, time
sys.path.insert(0, sys.argv[2])
from test_store import jobs_at
js = jobs_at(sys.argv[1]); l = js.lock()
try: l.acquire()
except Exception as e: print('busy', type(e).__name__, flush=True); sys.exit(0)
j = js.update(js.new(reason='holder'), state='running')
print('held', j['id'], flush=True); time.sleep(600)
'''

def test_one_retraining_lock_across_processes(registry_place):
    "Four processes race for the retraining lock (as four hosts would): one holds it; killed, it frees the lock and its job is reaped."
    import os, signal
    procs = [subprocess.Popen([sys.executable, '-c', HOLDER, registry_place, os.path.dirname(__file__)], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    lines = [p.stdout.readline().split() for p in procs]
    held = [(p, l) for p, l in zip(procs, lines) if l[0] == 'held']
    assert len(held) == 1 and sorted(l[0] for l in lines) == ['busy']*3 + ['held'], lines
    js = jobs_at(registry_place)
    assert js.reap() == [] and js.get(held[0][1][1])['state'] == 'running'
    os.kill(held[0][0].pid, signal.SIGKILL)
    for p in procs: p.wait(30)
    deadline = time.time() + 30
    while not js.reap() and time.time() < deadline: time.sleep(0.2)  # the server notices the lost connection at once, or nearly
    assert js.get(held[0][1][1])['state'] == 'failed'
    with js.lock(): pass

def events_at(where:str):
    from recnb.store import FileEvents, SqlEvents
    return SqlEvents(Database(where)) if '://' in where else FileEvents(where)

def _batch_frame(b:int, n:int):
    import pandas as pd
    return pd.DataFrame(dict(user_id=[b]*n, item_id=list(range(n)), rating=[1.]*n, timestamp=[b]*n)), [f"{b}-{i}" for i in range(n)]

@pytest.fixture
def events_place(registry_place):
    return registry_place if '://' in registry_place else registry_place + '/interactions.csv'

def test_events_contract(events_place):
    ev = events_at(events_place)
    assert (ev.cursor(), ev.count(), len(ev.read_since(0)[0])) == (0, 0, 0)
    df, ids = _batch_frame(1, 5)
    r1 = ev.append(df, ids)
    assert (r1['rows'], r1['duplicates'], ev.count(), ev.cursor()) == (5, 0, 5, r1['cursor'])
    r2 = ev.append(df, ids)  # the same batch again: nothing added
    assert (r2['rows'], r2['duplicates'], ev.count()) == (0, 5, 5)
    df2, ids2 = _batch_frame(2, 3)
    r3 = ev.append(df2, [ids2[0], ids[0], None])  # one new id, one stored, none
    assert (r3['rows'], r3['duplicates'], ev.count()) == (2, 1, 7)
    got, cur = ev.read_since(r1['cursor'])
    assert (got.user_id.tolist(), got.item_id.tolist(), cur) == ([2, 2], [0, 2], ev.cursor())
    got, _ = ev.read_since(0)
    assert list(got.columns) == ['user_id', 'item_id', 'rating', 'timestamp'] and len(got) == 7
    assert [str(t) for t in got.dtypes] == ['int64', 'int64', 'float64', 'int64']
    assert ev.read_since(cur) [0].empty

EV_WRITER = '''
import sys
sys.path.insert(0, sys.argv[2])
from test_store import events_at, _batch_frame
ev = events_at(sys.argv[1])
b = int(sys.argv[3])
while True:
    ev.append(*_batch_frame(b, 500))
    print(b, flush=True); b += 1
'''

def test_sigkill_during_event_batches(events_place):
    "Every acknowledged event is stored exactly once; a batch cut by the kill is all or nothing; resending every batch adds nothing."
    import os, random, signal
    rng, acked, b = random.Random(1), set(), 0
    for kill in range(12):
        p = subprocess.Popen([sys.executable, '-c', EV_WRITER, events_place, os.path.dirname(__file__), str(b)], stdout=subprocess.PIPE, text=True)
        acked.add(int(p.stdout.readline()))
        time.sleep(rng.uniform(0, 0.3))
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        acked |= {int(x) for x in out.split()}
        b = max(acked) + 2  # the batch after the last acknowledged one may or may not be stored
        got = events_at(events_place).read_since(0)[0]
        sizes = got.groupby('user_id').size()
        assert set(acked) <= set(sizes.index) and (sizes == 500).all(), sizes[sizes != 500]  # whole batches only
        assert not got.duplicated().any()
    ev = events_at(events_place)
    n = ev.count()
    for k in sorted(acked): assert ev.append(*_batch_frame(k, 500))['rows'] == 0  # a client resending what was acknowledged
    assert ev.count() == n and len(acked) >= 12

def test_db_import_copies_a_file_home_and_runs_twice_safely(store_url, tmp_path):
    home = tmp_path/'home'
    reg = Registry(home/'registry'); _model(reg, 0.4, 0.5); reg.promote('m', '1.0.1', actor='alice', reason='r')
    js = jobs_at(str(home/'jobs')); js.update(js.new(reason='nightly'), state='running')
    events_at(str(home/'data'/'interactions.csv')).append(*_batch_frame(3, 7))
    catalogue_at(str(home/'data'/'catalogue.jsonl')).append(dict(op='withdraw', item_ids=[5], actor='t'))
    IdMap(home/'data'/'ids'/'items.jsonl').adopt(pd.Series(['BK2', 'BK1', '17']))
    FileIngested(home/'data'/'ingested-files.jsonl').record(dict(sha256='ab', file='day1.csv', rows=7, time='2026-12-01T00:00:00+00:00'))
    env = env_for(home, RECNB_STORE_URL=store_url)
    outs = [recnb('db', 'import', env=env).stdout for _ in range(2)]
    for i, out in enumerate(outs):
        assert ('copied' if i == 0 else 'already imported') in out and f"{'7' if i == 0 else '0'} events copied" in out, out
        assert f"{'3' if i == 0 else '0'} item and 0 user ids, {'1' if i == 0 else '0'} ingested files" in out, out
    sql = registry_at(store_url)
    assert sql.load()['models'] == reg.load()['models'] and sql.audit() == reg.audit()
    assert [j['id'] for j in jobs_at(store_url).list()] == [j['id'] for j in js.list()]
    assert events_at(store_url).count() == 7 and catalogue_at(store_url).entries() == catalogue_at(str(home/'data'/'catalogue.jsonl')).entries()
    assert ids_at(store_url).external([0, 1, 2]) == ['17', 'BK1', 'BK2']
    assert SqlIngested(Database(store_url)).find('ab')['file'] == 'day1.csv'  # the same file is refused on every host
    assert not ids_at(store_url, 'user').strings  # the home's user ids are integers: no map started
    assert '1.0.1' in recnb('models', 'list', env=env).stdout  # the CLI reads the database now
    reg.register('m', params={'rank': 8}, embedding_model='e')  # the file home moves on
    r = recnb('db', 'import', env=env, check=False)
    assert r.returncode == 2 and 'nothing was imported' in r.stderr, r.stderr

def ids_at(where:str, what:str='item'):
    "An `IdMap` over a database's or a directory's map of `what` ids."
    from recnb.store import SqlIdLog
    return IdMap(None, what, SqlIdLog(Database(where), what)) if '://' in where else IdMap(Path(where)/f"{what}s.jsonl", what)

def test_id_map_contract(registry_place):
    m = ids_at(registry_place)
    assert not m.strings and m.assign([7, '3']).tolist() == [7, 3]  # integers until a data directory's strings start it
    assert not ids_at(registry_place).strings
    assert m.adopt(pd.Series(['BK2', '17', 'BK1', 'BK2'])).tolist() == [2, 0, 1, 2] and m.strings
    other = ids_at(registry_place)  # another host
    assert other.strings and other.external([0, 1, 2]) == ['17', 'BK1', 'BK2']
    assert other.adopt(pd.Series(['ZZ', '17'])).tolist() == [3, 0]  # started already: adopt only adds
    assert m.lookup_one('ZZ') == 3 and m.assign(['BK9', 'ZZ', 'BK9']).tolist() == [4, 3, 4]
    assert other.lookup(['BK9', 'nope']).tolist() == [4, -1]

def test_new_ids_from_racing_hosts_are_numbered_once(registry_place):
    from concurrent.futures import ThreadPoolExecutor
    ids_at(registry_place).adopt(pd.Series(['A0']))
    keys = [f"K{i}" for i in range(60)]
    def host(i):  # each its own map over the same log, adding overlapping new ids
        m = ids_at(registry_place)
        return dict(zip(keys[i*10:i*10+30], m.assign(keys[i*10:i*10+30]).tolist()))
    with ThreadPoolExecutor(4) as ex: got = list(ex.map(host, range(4)))
    seen = {}
    for g in got:
        for k, n in g.items(): assert seen.setdefault(k, n) == n, (k, n, seen[k])
    final = ids_at(registry_place)
    assert len(final) == 61 and sorted(final.lookup(keys).tolist()) == list(range(1, 61))  # one number each, none skipped
    assert all(final.lookup_one(k) == n for k, n in seen.items())

def catalogue_at(where:str):
    from recnb.store import FileCatalogue, SqlCatalogue
    return SqlCatalogue(Database(where)) if '://' in where else FileCatalogue(where)

def test_catalogue_log_contract(registry_place):
    log = catalogue_at(registry_place if '://' in registry_place else registry_place + '/catalogue.jsonl')
    assert (log.cursor(), log.entries()) == (None, [])
    a = log.append(dict(op='withdraw', item_ids=[1], actor='t'))
    k = log.cursor()
    b = log.append(dict(op='restore', item_ids=[1], actor='t'))
    assert (a['revision'], b['revision'], log.cursor() != k) == (1, 2, True)
    assert log.entries() == [a, b]

def test_catalogue_revisions_from_racing_hosts_are_numbered_once(registry_place):
    from concurrent.futures import ThreadPoolExecutor
    where = registry_place if '://' in registry_place else registry_place + '/catalogue.jsonl'
    with ThreadPoolExecutor(4) as ex:
        revs = list(ex.map(lambda i: catalogue_at(where).append(dict(op='withdraw', item_ids=[i]))['revision'], range(40)))
    assert sorted(revs) == list(range(1, 41)) and [e['revision'] for e in catalogue_at(where).entries()] == list(range(1, 41))

def ingested_at(where:str):
    "The log of ingested files in a database or a directory, whose lock waits 1 s."
    return SqlIngested(Database(where), timeout=1) if '://' in where else FileIngested(Path(where)/'ingested-files.jsonl', timeout=1)

def test_ingested_files_contract(registry_place):
    g = ingested_at(registry_place)
    assert g.entries() == [] and g.find('ab') is None
    with g.lock(): g.record(dict(sha256='ab', file='a.csv', rows=2, time='t1'))
    g.record(dict(sha256='ab', file='again.csv', rows=2, time='t2'))  # ingested again with --allow-duplicate
    assert g.find('ab')['file'] == 'a.csv' and [e['time'] for e in g.entries()] == ['t1', 't2']
    other = ingested_at(registry_place)  # another host
    with g.lock():
        with pytest.raises(Busy, match='ingest lock'), other.lock(): pass
    with other.lock(): assert other.find('ab')['rows'] == 2  # free again
