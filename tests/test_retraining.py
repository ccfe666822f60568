"Retraining end to end: ingest, `recnb retrain` under papermill, versioned report notebooks (verdict first, no stderr, plots drawn), conditional promotion, the service swapping models, failures, the lock, the scheduler."
import hashlib, json, os, shutil, signal, subprocess, time, warnings
from html import escape
from pathlib import Path
import httpx, nbformat, numpy as np, pandas as pd, pytest, scrapbook as sb
from nbconvert import HTMLExporter
from recnb.reports import retrain_headline
from conftest import API_KEY, BIN, Server, env_for, recnb
from recnb.data import bundled_data_dir

N_USERS = 200  # the bundled data's first users: every behaviour below shows on them, in a third of the time
N_NEW = 3000  # their newest interactions, held back and ingested later
N_AGAIN = 300  # ... with re-watches: pairs of the older data rated again, at the new data's times

@pytest.fixture(scope='module')
def world(home, tmp_path_factory):
    root = tmp_path_factory.mktemp('retrain')
    data = root/'movielens'; data.mkdir()  # the model is named after its data directory
    src = bundled_data_dir()
    for f in ('movies.csv', 'tags.csv', 'README.txt'): shutil.copy(src/f, data/f)
    ratings = pd.read_csv(src/'ratings.csv')
    ratings = ratings[ratings.userId <= N_USERS]
    new = ratings.iloc[ratings.timestamp.argsort(kind='stable').to_numpy()[-N_NEW:]]
    old = ratings.drop(new.index)
    again = old[old.userId.isin(new.userId)].sample(N_AGAIN, random_state=0)
    again = again.assign(timestamp=np.random.RandomState(0).choice(new.timestamp.to_numpy(), N_AGAIN))
    old.to_csv(data/'ratings.csv', index=False)
    pd.concat([new, again]).to_csv(root/'new.csv', index=False)
    h = root/'home'
    shutil.copytree(home/'cache', h/'cache')  # the bundled items' embeddings: training embeds nothing again
    env = env_for(h, RECNB_DATA_DIR=data, RECNB_API_KEY=API_KEY, RECNB_REGISTRY_POLL_SECONDS=0.2)  # the MLflow mirror on, as a new user has it
    recnb('train', '--quiet', env=env)
    recnb('models', 'promote', '--if-none', env=env)
    srv = Server(env, root/'server.log')
    yield dict(root=root, data=data, home=h, env=env, server=srv)
    srv.stop()

def retrain(w, *args, check=True, **env):
    r = recnb('retrain', '--json', *args, env={**w['env'], **{k: str(v) for k,v in env.items()}}, check=check)
    return r, (json.loads(r.stdout) if r.stdout.strip().startswith('{') else None)

def registry(w): return json.loads((w['home']/'registry'/'registry.json').read_text())['models']['movielens']

def served(w): return httpx.get(w['server'].url + '/health', timeout=10).json()['model']['version']

def wait_served(w, version, seconds=60):
    t = time.time()
    while time.time() - t < seconds:
        if served(w) == version: return True
        time.sleep(0.3)
    return False

def html_of(path):
    "The executed notebook at `path` as nbconvert renders it to HTML, and the notebook."
    nb = nbformat.read(str(path), as_version=4)
    with warnings.catch_warnings():  # scrapbook's scraps have no HTML form
        warnings.filterwarnings('ignore', message='Your element with mimetype', category=UserWarning)
        return HTMLExporter().from_notebook_node(nb)[0], nb

def stderr_outputs(nb):
    return [(i, ''.join(o['text'])[:200]) for i, c in enumerate(nb.cells) for o in c.get('outputs', []) if o.output_type == 'stream' and o.name == 'stderr']

STDERR_HTML = 'data-mime-type="application/vnd.jupyter.stderr"'  # how nbconvert marks a stderr output

def snapshot(h):
    "Every file under the home except the running service's own logs and metrics, with a hash of its content."
    return {str(p.relative_to(h)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(h.rglob('*'))
            if p.is_file() and p.relative_to(h).parts[0] not in ('logs', 'monitoring')}

def test_ingest_rejects_a_bad_file_whole(world):
    bad = world['root']/'bad.csv'
    bad.write_text('userId,movieId,rating,timestamp\n1,1,4.0,1700000000\n2,7,x,1700000001\n3,1,9,1700000002\n')
    r = recnb('ingest', str(bad), env=world['env'], check=False)
    assert r.returncode == 2
    assert "row 2, field 'rating'" in r.stderr and "row 3, field 'rating'" in r.stderr and 'nothing was written' in r.stderr
    assert not (world['home']/'data'/'interactions.csv').exists()

def test_ingest_then_dry_run_changes_nothing(world):
    r = recnb('ingest', str(world['root']/'new.csv'), env=world['env'])
    assert f"ingested {N_NEW + N_AGAIN} interactions" in r.stdout
    again = recnb('ingest', str(world['root']/'new.csv'), env=world['env'], check=False)
    assert again.returncode == 2 and 'this content was already ingested' in again.stderr and '--allow-duplicate' in again.stderr, again.stderr
    before = snapshot(world['home'])
    r, _ = retrain(world, '--dry-run', check=True)
    d = json.loads(r.stdout)['decision']
    assert d['retrain'] and any(x.startswith(f"new data: {N_NEW + N_AGAIN} new interactions") for x in d['reasons']), d
    assert snapshot(world['home']) == before

def test_retrain_promotes_a_better_candidate_and_the_service_serves_it(world):
    "New data with re-watches in it, at margin 0: the re-watches are left out of the held-out test, production is scored as served, the candidate wins."
    r, job = retrain(world, RECNB_RETRAIN_MARGIN=0)
    assert job['state'] == 'succeeded', job
    assert any('new data' in x for x in job['decision']['reasons'])
    assert (job['version'], job['promoted']) == ('1.0.1', True)
    assert job['embedding']['embedded'] == 0 and job['embedding']['cached'] == job['embedding']['total']
    rep = world['home']/'reports'/'retrain'/'movielens'/'1.0.1'
    assert job['report'].startswith(str(rep)) and job['report'].endswith('.ipynb')
    assert (rep/job['report'].split('/')[-1]).exists() and (rep/job['report_html'].split('/')[-1]).exists()
    scraps = sb.read_notebook(job['report']).scraps
    assert scraps['version'].data == '1.0.1' and scraps['promotion'].data['promote'] is True
    c = scraps['comparison'].data
    assert c['production_version'] == '1.0.0' and c['test']['n'] > 0 and 'ndcg@10' in c['candidate']
    assert (c['outcome'], c['production_scored']) == ('better', 'as served') and c['n_repeats'] > 0, c
    # the report reads like one: the verdict at the top, as the headline words the job's comparison and decision; no stderr; both plots drawn
    body, nb = html_of(job['report'])
    assert stderr_outputs(nb) == [] and STDERR_HTML not in body and r.stderr == ''
    h = retrain_headline(c, dict(promote=job['promoted'], reason=job['promotion_reason'], version=job['version']), 'movielens')
    assert h.title == 'Verdict: promote movielens 1.0.1 to production, replacing 1.0.0.' and h.lines[-1] == f"Why: {job['promotion_reason']}"
    parameters = body.index('# Parameters')
    assert all(body.index(escape(line)) < parameters for line in (h.title, *h.lines)), 'the verdict is not at the top'
    assert parameters < body.index('<img') and body.count('<img') == 2  # candidate against production, and the metric per version
    assert '<title>retrain report: movielens 1.0.1</title>' in open(job['report_html']).read()
    v = registry(world)['versions']['1.0.1']
    assert v['report'] == job['report'] and v['stage'] == 'production' and 'holdout_ndcg@10' in v['metrics']
    assert wait_served(world, '1.0.1')

def test_retrain_keeps_production_when_the_candidate_is_not_better(world):
    "A forced retrain on unchanged data at margin 0: a tie (same recipe, same data), never a candidate rejected as worse."
    r, job = retrain(world, '--force', '--reason', 'weekly refresh', RECNB_RETRAIN_MARGIN=0)
    assert job['state'] == 'succeeded' and job['promoted'] is False and job['promotion_reason'].startswith('tie:'), job
    c = job['comparison']
    assert (c['outcome'], c['production_scored'], c['test']['effect']) == ('tie', 'refitted on the same data', 0.0), c
    assert not job['decision']['retrain']  # forced: the policy alone would not have retrained
    v = registry(world)['versions'][job['version']]
    assert v['stage'] == 'validation' and v['tags']['not_promoted'] == job['promotion_reason']
    assert registry(world)['production'] == '1.0.1' and served(world) == '1.0.1'

def test_a_failing_notebook_fails_the_job_and_leaves_production(world):
    r, job = retrain(world, '--force', '-p', 'fail_stage', 'evaluate', check=False)
    assert r.returncode == 1 and job['state'] == 'failed'
    assert 'failure injected' in job['error']
    nb = json.loads(open(job['report']).read())  # the executed notebook is kept, with the error in it
    assert any(o.get('ename') == 'RuntimeError' for c in nb['cells'] for o in c.get('outputs', []))
    body, nb = html_of(job['report'])  # the placeholder verdict stays, and is true
    assert stderr_outputs(nb) == [] and body.index('No verdict: this run stopped before its decision.') < body.index('RuntimeError')
    assert registry(world)['production'] == '1.0.1' and served(world) == '1.0.1'
    shown = json.loads(recnb('jobs', 'show', job['id'], env=world['env']).stdout)
    assert shown['state'] == 'failed' and shown['error'] == job['error']

def descendants(pid:int)->list[int]:
    "Every process below `pid`, from /proc (the notebook's kernel included, whatever its session)."
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try: fields = stat.read_text().rsplit(')', 1)[1].split()
        except (OSError, IndexError): continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo: out += (kids := children.get(todo.pop(), [])); todo += kids
    return out

def test_a_killed_job_is_marked_interrupted_and_the_next_one_runs(world):
    "SIGKILL `recnb retrain` and its notebook kernel mid-run: production stays, the job shows as failed, the next retrain runs."
    before, jobs_dir = registry(world)['production'], world['home']/'jobs'
    known = {f.name for f in jobs_dir.glob('*.json')}
    p = subprocess.Popen([str(BIN/'recnb'), 'retrain', '--force', '--reason', 'to be killed'], env=world['env'],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t, job = time.time(), None
    while job is None and time.time() - t < 120 and p.poll() is None:
        job = next((j for f in jobs_dir.glob('*.json') if f.name not in known and (j := json.loads(f.read_text()))['state'] == 'running'), None)
        time.sleep(0.2)
    assert job, "the job never started"
    t = time.time()
    while not any('ipykernel' in Path(f'/proc/{c}/cmdline').read_text(errors='ignore') for c in descendants(p.pid) if Path(f'/proc/{c}').exists()) and time.time() - t < 60:
        time.sleep(0.2)
    time.sleep(2)  # the notebook is running
    for pid in [p.pid, *descendants(p.pid)]:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    p.wait(30)
    assert json.loads((jobs_dir/f"{job['id']}.json").read_text())['state'] == 'running'  # what the killed process left
    listed = httpx.get(world['server'].url + '/jobs', timeout=10).json()
    killed = next(j for j in listed if j['id'] == job['id'])
    assert killed['state'] == 'failed' and killed['error'].startswith('interrupted'), killed
    assert registry(world)['production'] == before and served(world) == before
    r, nxt = retrain(world, '--force', '--reason', 'after the kill', RECNB_RETRAIN_MARGIN=1)
    assert nxt['state'] == 'succeeded' and nxt['promoted'] is False, nxt
    assert registry(world)['production'] == before and served(world) == before

def test_changed_items_are_embedded_alone_and_a_second_job_is_refused(world):
    movies = pd.read_csv(world['data']/'movies.csv')
    changed = movies.index[::100]  # 1% of the catalogue
    movies.loc[changed, 'genres'] = movies.loc[changed, 'genres'] + '|Documentary'
    movies.to_csv(world['data']/'movies.csv', index=False)
    url = world['server'].url
    r = httpx.post(url + '/retrain/check', json={'run': True, 'force': True, 'reason': 'catalogue update'}, headers={'X-API-Key': API_KEY}, timeout=30)
    assert r.status_code == 202, r.text
    jid = r.json()['job']['id']
    t = time.time()
    while httpx.get(f"{url}/jobs/{jid}", timeout=10).json()['state'] == 'pending' and time.time() - t < 60: time.sleep(0.2)
    second, _ = retrain(world, '--force', check=False)
    assert second.returncode == 1 and 'another retraining job is running' in second.stderr
    assert httpx.post(url + '/retrain/check', json={'run': True, 'force': True}, headers={'X-API-Key': API_KEY}, timeout=30).status_code == 409
    while (job := httpx.get(f"{url}/jobs/{jid}", timeout=10).json())['state'] in ('pending', 'running') and time.time() - t < 600: time.sleep(1)
    assert job['state'] == 'succeeded', job
    assert job['embedding']['embedded'] == len(changed) and job['embedding']['cached'] == len(movies) - len(changed)

def test_scheduler_runs_its_jobs_once_on_demand(world):
    r = recnb('schedule', '--once', env=world['env'])
    assert 'retrain job' in r.stdout and 'skipped' in r.stdout  # nothing new since the last job
    reports = sorted((world['home']/'reports'/'evaluate'/'movielens').glob('*/*.ipynb'))
    assert len(reports) == 1 and reports[0].with_suffix('.html').exists(), r.stdout
    scraps = sb.read_notebook(str(reports[0])).scraps
    assert scraps['version'].data == registry(world)['production'] and 'ndcg@10' in scraps['metrics'].data
    assert {c['column'] for c in scraps['drift'].data['columns']} == {'rating', 'item_popularity', 'user_activity'}
    body, nb = html_of(reports[0])
    assert stderr_outputs(nb) == [] and STDERR_HTML not in body
    head = body.index(escape(f"movielens {registry(world)['production']} (production): NDCG@10 "))
    assert head < body.index('# Parameters') < body.index('<img'), 'the verdict is not at the top'
    top = body[head:body.index('# Parameters')]
    assert 'no drift in the new interactions.' in top or 'the new interactions drifted.' in top, top[:500]
    assert body.count('<img') == 2  # drift per column, and the metric per version
    header, *jobs = recnb('jobs', 'list', env=world['env']).stdout.splitlines()
    assert header.split()[:2] == ['JOB', 'STATE'] and 'REPORT' in header
    assert jobs[0].split()[1] == 'skipped' and len(jobs) == 7
