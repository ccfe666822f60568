"Fixtures that need real processes: a model trained by the `recnb` CLI and the app under uvicorn."
import os, shutil, socket, subprocess, sys, time
from pathlib import Path
from contextlib import contextmanager
import httpx, pytest

BIN = Path(sys.executable).parent

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def env_for(home, **extra):
    env = {**os.environ, 'RECNB_HOME': str(home), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    env.update({k: str(v) for k,v in extra.items()})
    return env

def recnb(*args, env, check=True, timeout=900):
    r = subprocess.run([str(BIN/'recnb'), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode: raise AssertionError(f"recnb {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r

API_KEY = 'test-key-0123456789'

def _train_home(h:Path)->list:
    out = [recnb('train', '--quiet', env=env_for(h)).stdout, recnb('train', '--quiet', env=env_for(h)).stdout]
    recnb('models', 'promote', 'movielens', '1.0.0', '--reason', 'first model', env=env_for(h))
    return out

def _repath_sqlite(db:Path, old:str, new:str):
    "Every text value in the SQLite file `db` that names `old` names `new` instead (MLflow keeps absolute artifact locations)."
    import sqlite3
    con = sqlite3.connect(db)
    try:
        for (t,) in con.execute("select name from sqlite_master where type='table'").fetchall():
            for col in con.execute(f'pragma table_info("{t}")').fetchall():
                if 'CHAR' in col[2].upper() or 'TEXT' in col[2].upper():
                    con.execute(f'update "{t}" set "{col[1]}" = replace("{col[1]}", ?, ?) where instr("{col[1]}", ?) > 0', (old, new, old))
        con.commit()
    finally: con.close()

@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """A RECNB_HOME where `recnb train` ran twice on the bundled MovieLens data (1.0.0 and 1.0.1) and
    `recnb models promote` put 1.0.0 in production; the stdout of each step.

    Under pytest-xdist the workers of one run train once between them: the first to take the lock trains
    into a directory they share, and each worker gets a copy of its own (MLflow's locations rewritten)."""
    import fcntl, json
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base
    src, done = shared/'trained-home', shared/'trained-home.json'
    with open(shared/'trained-home.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(src, ignore_errors=True); src.mkdir()
            done.write_text(json.dumps(_train_home(src)))
    h = tmp_path_factory.mktemp('recnb-home')
    shutil.rmtree(h); shutil.copytree(src, h, ignore=shutil.ignore_patterns('*.lock'))
    _repath_sqlite(h/'mlflow'/'mlflow.db', str(src), str(h))
    return h, json.loads(done.read_text())

# The order files are handed to pytest-xdist's workers (`--dist loadfile --no-loadscope-reorder`): each worker
# starts with one file that needs the session's trained home and one that does not, so while one worker trains
# the other runs tests; then the files that need no trained home, then the rest. The longest come first in each.
LONG_FIRST = ['test_retraining.py', 'test_two_hosts.py', 'test_e2e.py', 'test_docs.py', 'test_own_data.py']

def pytest_collection_modifyitems(config, items):
    files = {}
    for it in items: files.setdefault(it.path.name, []).append(it)
    rank = lambda f: (LONG_FIRST.index(f) if f in LONG_FIRST else len(LONG_FIRST), f)
    trained_ = sorted((f for f, its in files.items() if any('trained' in it.fixturenames for it in its)), key=rank)
    others = sorted((f for f in files if f not in trained_), key=rank)
    order = [f for pair in zip(trained_[:2], others[:2]) for f in pair]
    order += [f for f in others + trained_ if f not in order]
    items[:] = [it for f in order for it in files[f]]

@pytest.fixture(scope='session')
def home(trained): return trained[0]

def copy_home(home:Path, dest:Path)->Path:
    "A copy of a trained home at `dest` (models, vectors, registry, embedding cache) whose versions' paths point into the copy."
    for d in ('models', 'vectors', 'registry', 'cache'): shutil.copytree(home/d, dest/d)
    reg = dest/'registry'/'registry.json'
    reg.write_text(reg.read_text().replace(f'"{home}/', f'"{dest}/'))
    return dest

class Server:
    "`recnb serve` in a subprocess on a free loopback port (`exe`: another install's `recnb`; `args`: more `serve` options)."
    def __init__(self, env, log:Path, ready:str='/health', args=(), exe:Path=BIN/'recnb', cwd=None):
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, 'wb') as f:  # a file, not a pipe: nobody reads a pipe, and a full one blocks the server
            self.proc = subprocess.Popen([str(exe), 'serve', '--port', str(self.port), *args], env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None: raise AssertionError(f"server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + ready, timeout=2).status_code == 200: return
            except httpx.HTTPError: time.sleep(0.3)
        self.stop(); raise AssertionError('server did not start in 180 s')

    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(20)
        except subprocess.TimeoutExpired: self.proc.kill()

def start_mlflow(tmp:Path, port:int)->subprocess.Popen:
    "`mlflow server` on 127.0.0.1:`port`, its SQLite store and the artifacts it serves under `tmp`."
    tmp.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([str(BIN/'mlflow'), 'server', '--host', '127.0.0.1', '--port', str(port),
                          '--backend-store-uri', f"sqlite:///{tmp}/mlflow.db", '--artifacts-destination', str(tmp/'artifacts'),
                          '--workers', '1'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200: return p
        except httpx.HTTPError: time.sleep(0.5)
    p.kill(); raise AssertionError('mlflow server did not start')

@pytest.fixture(scope='session')
def server(home):
    s = Server(env_for(home, RECNB_API_KEY=API_KEY, RECNB_REGISTRY_POLL_SECONDS=0.2), home/'server.log')
    yield s
    s.stop()

@contextmanager
def serving_copy(home:Path, root:Path, **env):
    "`recnb serve` on a copy of the trained home under `root`, polling the registry every 0.2 s: a dict of its server (replaceable), home, env and root."
    h = copy_home(home, root/'home')
    ctx = dict(home=h, root=root, env=env_for(h, RECNB_REGISTRY_POLL_SECONDS=0.2, RECNB_MLFLOW_MIRROR=0, **env))
    ctx['server'] = Server(ctx['env'], root/'server.log')
    try: yield ctx
    finally: ctx['server'].stop()

# PostgreSQL: one private server per test session (tools/postgres.py, Debian's package), a migrated
# template database, and a copy of it for each test that asks for `store_url`.
ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope='session')
def postgres():
    sys.path.insert(0, str(ROOT/'tools'))
    from postgres import PostgresServer
    from recnb.store import Database
    s = PostgresServer(fsync=False).start().watch()  # fsync off: the tests kill clients and stop the server cleanly, never the machine; watched: a killed pytest leaves no server
    db = Database(s.create_db('recnb_template')); db.upgrade(); db.close()
    yield s
    s.stop(remove=True)

@pytest.fixture
def store_url(postgres, request):
    "A new database, migrated, of its own for this test."
    import re, uuid
    name = 't_' + re.sub(r'\W+', '_', request.node.name)[:40].lower() + '_' + uuid.uuid4().hex[:6]
    return postgres.create_db(name, template='recnb_template')

def registry_at(where:str, timeout:float=60):
    "A `Registry` on a database URL or in a directory."
    from recnb.registry import Registry
    from recnb.store import Database, SqlRegistry
    return Registry(backend=SqlRegistry(Database(where), timeout)) if '://' in where else Registry(where, timeout)

@pytest.fixture(params=['file', 'postgresql'])
def registry_place(request, tmp_path):
    "Where a registry is kept, once for each backend: a directory, or the URL of a new database."
    return str(tmp_path/'registry') if request.param == 'file' else request.getfixturevalue('store_url')
