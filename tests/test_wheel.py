"""The built wheel, installed in fresh venvs outside the clone: `recnb train`, `recnb retrain --force` and
`recnb serve` run from there, and the mirrored MLflow model loads in a venv holding only its own requirements."""
import importlib.metadata as md, json, os, shutil, subprocess, sys, zipfile
from pathlib import Path
import httpx, pandas as pd, pytest
from mlflow import MlflowClient
from conftest import BIN, Server
from recnb.data import bundled_data_dir

pytestmark = pytest.mark.heavy  # packaging: builds the wheel, installs it in venvs of its own: `make test-heavy`, not `make test`

ROOT = Path(__file__).resolve().parent.parent
N_USERS = 150  # the bundled MovieLens data, cut to its first users: every step runs, quickly

def run(*cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900, **kw)
    if r.returncode: raise AssertionError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r

def build_wheel(out:Path)->Path:
    "The wheel of a clean copy of the source, so stale files in the clone's build/ cannot slip in."
    src = out/'src'; src.mkdir(parents=True)
    for f in ('pyproject.toml', 'README.md'): shutil.copy(ROOT/f, src/f)
    shutil.copytree(ROOT/'recnb', src/'recnb', ignore=shutil.ignore_patterns('__pycache__'))
    run(sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', out, src)
    return next(out.glob('recnb-*.whl'))

def find_links()->list[str]:
    "pip's configured --find-links, for uv, which does not read pip's configuration."
    out = run(sys.executable, '-m', 'pip', 'config', 'list').stdout.splitlines()
    return list(dict.fromkeys(v for l in out if l.split('=')[0].endswith('find-links') for v in l.split('=', 1)[1].strip('\'"').split()))

def venv(d:Path, *reqs)->Path:
    """A venv at `d` with this venv's torch build and `reqs`, under constraints.txt; its bin directory.
    uv when it is installed: from a warm cache it takes seconds where pip takes a minute and a half."""
    torch, py = f"torch=={md.version('torch')}", Path(sys.base_prefix)/'bin'/f"python{sys.version_info.major}.{sys.version_info.minor}"
    uv = shutil.which('uv', path=str(BIN)) or shutil.which('uv')
    if uv:
        run(uv, 'venv', '-q', '-p', py, d)
        run(uv, 'pip', 'install', '-q', '-p', d/'bin'/'python', *[a for f in find_links() for a in ('--find-links', f)],
            '-c', ROOT/'constraints.txt', torch, *reqs)
    else:
        run(py, '-m', 'venv', d)
        run(d/'bin'/'python', '-m', 'pip', 'install', '-q', '-c', ROOT/'constraints.txt', torch)
        run(d/'bin'/'python', '-m', 'pip', 'install', '-q', '-c', ROOT/'constraints.txt', *reqs)
    return d/'bin'

def clean_env(**extra)->dict:
    "This environment without anything that would find the clone's recnb or this venv."
    env = {k: v for k,v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV', 'MLFLOW_TRACKING_URI')}
    return {**env, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', **{k: str(v) for k,v in extra.items()}}

@pytest.fixture(scope='module')
def world(home, tmp_path_factory):
    "The wheel installed in a fresh venv; a RECNB_HOME (with the bundled items' embeddings) where it trained and promoted 1.0.0."
    root = tmp_path_factory.mktemp('wheel')
    assert not root.resolve().is_relative_to(ROOT)
    whl = build_wheel(root/'dist')
    bin_ = venv(root/'venv', whl)
    data = root/'movielens'; data.mkdir()  # the model is named after its data directory
    src = bundled_data_dir()
    for f in ('movies.csv', 'tags.csv'): shutil.copy(src/f, data/f)
    r = pd.read_csv(src/'ratings.csv')
    r[r.userId <= N_USERS].to_csv(data/'ratings.csv', index=False)
    h, cwd = root/'home', root/'cwd'; cwd.mkdir()
    shutil.copytree(home/'cache', h/'cache')  # embeddings only: nothing else of the other home
    env = clean_env(RECNB_HOME=h, RECNB_DATA_DIR=data, PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}")
    recnb = lambda *a: run(bin_/'recnb', *a, env=env, cwd=cwd)
    assert 'trained movielens 1.0.0' in recnb('train', '--quiet').stdout
    recnb('models', 'promote', '--if-none')
    return dict(root=root, whl=whl, bin=bin_, home=h, cwd=cwd, env=env, recnb=recnb)

def test_the_wheel_ships_the_notebooks_and_runs_outside_the_clone(world):
    names = zipfile.ZipFile(world['whl']).namelist()
    assert {'recnb/scheduled/retrain.ipynb', 'recnb/scheduled/evaluate.ipynb'} <= set(names)
    where = run(world['bin']/'python', '-c', 'import recnb.reports as r; from recnb.config import Settings; print(r.__file__); print(r.scheduled_dir(Settings()))',
                env=world['env'], cwd=world['cwd']).stdout.split()
    assert all(Path(p).is_relative_to(world['root']/'venv') for p in where), where

def test_retrain_force_runs_the_shipped_notebook(world):
    job = json.loads(world['recnb']('retrain', '--force', '--json').stdout)
    assert job['state'] == 'succeeded', job
    assert Path(job['report']).is_relative_to(world['home']/'reports') and Path(job['report']).exists()

def test_serve_answers(world):
    srv = Server(world['env'], world['root']/'server.log', exe=world['bin']/'recnb', cwd=world['cwd'])
    try:
        r = httpx.post(srv.url + '/recommend', json={'user_id': 1, 'k': 5}, timeout=30)
        assert r.status_code == 200 and len(r.json()['items']) == 5
    finally: srv.stop()

LOAD = """
import importlib.util, json, sys, mlflow
assert importlib.util.find_spec('recnb') is None, 'recnb is installed here'
mlflow.set_tracking_uri(sys.argv[1])
pf = mlflow.pyfunc.load_model('models:/movielens@production')
out = pf.predict(pf.input_example)
import recnb
print(json.dumps(dict(recnb=recnb.__file__, requests=sorted(set(out.request.tolist())), n=len(out),
                      version=pf.metadata.metadata['recnb_package_version'])))
"""

def test_the_mlflow_model_loads_in_a_venv_of_its_own_requirements(world):
    uri = f"sqlite:///{world['home']}/mlflow/mlflow.db"
    c = MlflowClient(uri, uri)
    mv = c.get_model_version_by_alias('movielens', 'production')
    model = Path(c.get_model_version_download_uri('movielens', mv.version).removeprefix('file://'))
    reqs = (model/'requirements.txt').read_text().split()
    assert all('==' in r for r in reqs) and 'recnb' not in {r.split('==')[0] for r in reqs}
    bin_ = venv(world['root']/'model-venv', '-r', model/'requirements.txt')
    got = json.loads(run(bin_/'python', '-c', LOAD, uri, env=clean_env(), cwd=world['cwd']).stdout.strip().splitlines()[-1])
    assert Path(got['recnb']).parts[-3:] == ('code', 'recnb', '__init__.py')  # the model's own copy of recnb
    want = run(world['bin']/'python', '-c', 'import recnb; print(recnb.__version__)', env=world['env']).stdout.strip()
    assert got['version'] == want and got['requests'] == [0, 1, 2] and got['n'] > 3
