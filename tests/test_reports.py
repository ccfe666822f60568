"The executed report notebooks as a reader gets them from `recnb retrain` and `recnb schedule`: the verdict first, no stderr, the plots drawn."
import json, shutil, warnings
from html import escape
import nbformat, pytest
from nbconvert import HTMLExporter
from conftest import env_for, recnb
from recnb.reports import retrain_headline

@pytest.fixture(scope='module')
def reports(home, first_users, tmp_path_factory):
    """A home trained on the first 200 users with 1.0.0 in production (MLflow mirror on, as a new user has it), then
    `recnb retrain --force` (a tie: 1.0.1 stays in validation), `recnb schedule --once` (the evaluation report of 1.0.0)
    and a retrain that fails at its first stage."""
    h = tmp_path_factory.mktemp('reports')/'home'
    shutil.copytree(home/'cache', h/'cache')  # the bundled items' embeddings: nothing is embedded again
    env = env_for(h, RECNB_DATA_DIR=first_users)
    recnb('train', '--quiet', env=env)
    recnb('models', 'promote', '--if-none', env=env)
    retrain = recnb('retrain', '--force', '--json', env=env)
    recnb('schedule', '--once', env=env)
    failed = recnb('retrain', '--force', '--json', '-p', 'fail_stage', 'data', env=env, check=False)
    evaluate, = (h/'reports'/'evaluate'/'movielens'/'1.0.0').glob('*.ipynb')
    return dict(home=h, retrain=retrain, job=json.loads(retrain.stdout), evaluate=evaluate, failed=json.loads(failed.stdout))

def html_of(path):
    "The executed notebook at `path` as nbconvert renders it to HTML, and the notebook."
    nb = nbformat.read(str(path), as_version=4)
    with warnings.catch_warnings():  # scrapbook's scraps have no HTML form
        warnings.filterwarnings('ignore', message='Your element with mimetype', category=UserWarning)
        return HTMLExporter().from_notebook_node(nb)[0], nb

def stderr_outputs(nb):
    return [(i, ''.join(o['text'])[:200]) for i, c in enumerate(nb.cells) for o in c.get('outputs', []) if o.output_type == 'stream' and o.name == 'stderr']

STDERR_HTML = 'data-mime-type="application/vnd.jupyter.stderr"'  # how nbconvert marks a stderr output (its CSS quotes it with ')

def test_retrain_report_opens_with_its_verdict_and_has_no_stderr(reports):
    job = reports['job']
    assert (job['state'], job['version'], job['promoted']) == ('succeeded', '1.0.1', False), job
    body, nb = html_of(job['report'])
    assert stderr_outputs(nb) == [] and STDERR_HTML not in body
    # the comparison and the decision the job applied, as the headline words them: title, the NDCG@10 of both and their users, the reason
    h = retrain_headline(job['comparison'], dict(promote=job['promoted'], reason=job['promotion_reason'], version=job['version']), 'movielens')
    assert h.title == 'Verdict: do not promote movielens 1.0.1; production stays 1.0.0.' and h.lines[-1] == f"Why: {job['promotion_reason']}"
    parameters = body.index('# Parameters')
    assert all(body.index(escape(line)) < parameters for line in (h.title, *h.lines)), 'the verdict is not at the top'
    assert parameters < body.index('<img')
    assert body.count('<img') == 2  # candidate against production, and the metric per version
    assert '<title>retrain report: movielens 1.0.1</title>' in open(job['report_html']).read()
    assert reports['retrain'].stderr == ''  # nor in the command's own output (ipykernel's warning about unencrypted TCP)

def test_evaluation_report_opens_with_its_verdict_and_has_no_stderr(reports):
    body, nb = html_of(reports['evaluate'])
    assert stderr_outputs(nb) == [] and STDERR_HTML not in body
    head = body.index(escape('movielens 1.0.0 (production): NDCG@10 '))
    assert head < body.index('# Parameters') < body.index('<img'), 'the verdict is not at the top'
    top = body[head:body.index('# Parameters')]
    assert 'no drift in the new interactions.' in top or 'the new interactions drifted.' in top, top[:500]
    assert body.count('<img') == 2  # drift per column, and the metric per version: both drawn

def test_a_failed_run_keeps_its_placeholder_verdict(reports):
    job = reports['failed']
    assert job['state'] == 'failed' and 'failure injected' in job['error'], job
    body, nb = html_of(job['report'])
    assert stderr_outputs(nb) == []
    assert body.index('No verdict: this run stopped before its decision.') < body.index('RuntimeError')
