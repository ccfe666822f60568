"The registry under real concurrent writers and under SIGKILL, on both backends (a directory, PostgreSQL)."
import json, os, random, signal, subprocess, sys, time
from multiprocessing import get_context
from recnb.registry import LEGAL
from conftest import registry_at

def _worker(where, wid, n):
    reg = registry_at(where, timeout=300)
    for i in range(n):
        v = reg.register('movielens', params={'rank': 128}, embedding_model='m', tags={'worker': str(wid)}, actor=f"w{wid}")
        reg.transition('movielens', v['version'], 'validation', actor=f"w{wid}", reason=f"op {i}")

def replay(audit):
    "Each version's stage after replaying the audit log."
    stages = {}
    for e in audit:
        assert stages.get(e['version']) == e['from_stage'], e
        assert e['from_stage'] is None or e['to_stage'] in LEGAL[e['from_stage']], e
        stages[e['version']] = e['to_stage']
    return stages

def test_eight_concurrent_writers(registry_place):
    ctx = get_context('spawn')
    procs = [ctx.Process(target=_worker, args=(registry_place, w, 25)) for w in range(8)]
    for p in procs: p.start()
    for p in procs: p.join(300)
    assert all(p.exitcode == 0 for p in procs)
    reg = registry_at(registry_place)
    versions = reg.get('movielens')['versions']
    assert len(versions) == 200 and len(set(versions)) == 200
    assert sorted(versions, key=lambda v: tuple(map(int, v.split('.')))) == [f"1.0.{i}" for i in range(200)]
    assert all(v['stage'] == 'validation' for v in versions.values())
    audit = reg.audit()
    assert len(audit) == 400 and [e['seq'] for e in audit] == list(range(1, 401))
    assert replay(audit) == {k: v['stage'] for k,v in versions.items()}
    assert reg.load()['audit_seq'] == 400 and reg.revision() == 400
    if reg.path: assert json.loads(reg.path.read_text())['audit_seq'] == 400  # valid JSON

WRITER = '''
import sys
sys.path.insert(0, sys.argv[2])
from conftest import registry_at
reg = registry_at(sys.argv[1])
while True:
    v = reg.register('movielens', params={'rank': 128}, embedding_model='m')
    reg.transition('movielens', v['version'], 'validation')
    print(v['version'], flush=True)
'''

def test_sigkill_never_loses_an_acknowledged_version(registry_place):
    rng, acked, kills = random.Random(0), set(), 0
    while kills < 30:
        p = subprocess.Popen([sys.executable, '-c', WRITER, registry_place, os.path.dirname(__file__)], stdout=subprocess.PIPE, text=True)
        first = p.stdout.readline()  # writing: the kill lands among the writes, not in the start-up
        time.sleep(rng.uniform(0, 0.3))
        os.kill(p.pid, signal.SIGKILL); kills += 1
        out, _ = p.communicate()
        acked |= set((first + out).split())  # printed only after register and transition returned
        reg = registry_at(registry_place)
        versions = reg.get('movielens')['versions'] if reg.models() else {}
        assert acked <= set(versions), acked - set(versions)
        for v in acked: assert versions[v]['stage'] == 'validation'
        assert replay(reg.audit()) == {k: v['stage'] for k,v in versions.items()}
    assert len(acked) > 40
