"""Promotion survives a kill: a process promoting and rolling back as fast as it can (the registry calls that
`recnb models promote` and `rollback` make, with the embedded store) is SIGKILLed at a random moment, 30 times,
while `recnb serve` runs. After each kill the next promotion leaves the registry and the vector store's
production alias in agreement, no acknowledged promotion is lost, and `/recommend` answers with the
production version, which the service reaches through the alias. The CLI's own promote and rollback run
before and after."""
import json, random, signal, subprocess, time
import httpx, pytest
from conftest import serving_copy, BIN, recnb

KILLS = 30

@pytest.fixture(scope='module')
def world(home, tmp_path_factory):
    "`recnb serve` on a copy of the trained home (1.0.0 in production, 1.0.1 in validation), polling the registry every 0.2 s."
    with serving_copy(home, tmp_path_factory.mktemp('kills')) as ctx: yield ctx

def production(w)->tuple[str, str]:
    "The registry's production version and its collection."
    m = json.loads((w['home']/'registry'/'registry.json').read_text())['models']['movielens']
    return m['production'], m['versions'][m['production']]['collection']

def alias(w)->str|None: return json.loads((w['home']/'vectors'/'edge'/'aliases.json').read_text()).get('movielens-production')

def toggle(w)->list[str]:
    "The command that changes production: 1.0.0 -> promote 1.0.1; 1.0.1 -> roll back (to 1.0.0)."
    return ['models', 'promote', 'movielens', '1.0.1'] if production(w)[0] == '1.0.0' else ['models', 'rollback', 'movielens']

def served(w, version:str, seconds:float=30)->dict:
    "A /recommend answer from `version`, waiting for the service to follow the registry."
    t = time.time()
    while True:
        j = httpx.post(w['server'].url + '/recommend', json={'user_id': 1, 'k': 3}, timeout=30).json()
        if j['model_version'] == version or time.time() - t > seconds: return j
        time.sleep(0.1)

DRIVER = """
import sys
from recnb.registry import Registry
from recnb.vectorstore import EdgeStore
home, run = sys.argv[1], sys.argv[2]
reg, store = Registry(home + '/registry'), EdgeStore(home + '/vectors/edge')
for n in range(10**6):  # promote and roll back as fast as it can: a kill lands in the middle of one
    reason = f"kill test run {run} op {n}"
    if reg.production('movielens')['version'] == '1.0.0': e = reg.promote('movielens', '1.0.1', 'kill-test', reason, store)
    else: e = reg.rollback('movielens', 'kill-test', reason, store)
    print(reason, e['version'], flush=True)  # acknowledged
"""

def test_kills_of_promote_and_rollback_leave_registry_alias_and_service_in_agreement(world, tmp_path):
    from recnb.registry import Registry
    from recnb.vectorstore import EdgeStore
    rng, h = random.Random(0), world['home']
    out = recnb(*toggle(world), env=world['env']).stdout  # the CLI's promotion, whole
    assert production(world)[0] in out and alias(world) == production(world)[1], out
    script = tmp_path/'driver.py'; script.write_text(DRIVER)
    behind, acked = 0, []
    for run in range(KILLS):
        log = tmp_path/f"run{run}.txt"
        with open(log, 'w') as f:
            p = subprocess.Popen([str(BIN/'python'), str(script), str(h), str(run)], env=world['env'], stdout=f)
            time.sleep(rng.uniform(0.8, 1.6))
            p.send_signal(signal.SIGKILL); p.wait()
        assert p.returncode == -signal.SIGKILL
        acked += [l.rsplit(' ', 1) for l in log.read_text().splitlines() if l.count(' ') == 6]  # whole lines only
        behind += alias(world) != production(world)[1]  # what the kill left
        version, collection = production(world)
        e = Registry(h/'registry').promote('movielens', version, 'kill-test', 'the next command', EdgeStore(h/'vectors'/'edge'))
        assert e['version'] == version and alias(world) == collection, (run, alias(world), collection)
        j = served(world, version)
        assert j['model_version'] == version, (run, version, j)
    audit = {e['reason']: e['version'] for l in (h/'registry'/'audit.jsonl').read_text().splitlines() if (e := json.loads(l))['to_stage'] == 'production'}
    lost = [(r, v) for r, v in acked if audit.get(r) != v]
    assert acked and not lost, lost[:5]
    r = recnb(*toggle(world), env=world['env'])  # and the CLI after it all
    version, collection = production(world)
    assert alias(world) == collection and served(world, version)['model_version'] == version
    assert httpx.get(world['server'].url + '/health', timeout=10).json()['model']['collection'] == collection
    print(f"{KILLS} kills; {len(acked)} acknowledged promotions and rollbacks, none lost; {behind} kills left the alias behind the registry, each repaired")
