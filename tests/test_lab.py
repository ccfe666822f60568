"""`make lab`, the data scientist's front door: it starts here (as root too, with no browser to open), serves
/lab, and a whole notebook runs in the "recnb (.venv)" kernel in headless Chromium, as in the docs test."""
import json, os, re, signal, subprocess, time
from pathlib import Path
import httpx, pytest
from conftest import free_port
from test_docs import OUT, ROOT, chrome

pytestmark = pytest.mark.heavy  # JupyterLab and a browser: `make test-heavy`, not `make test`

NOTEBOOK = '05_model.ipynb'

@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "`make lab` on a free port; its URL with the token it printed. Autosave is off, so running a notebook changes no file."
    d = tmp_path_factory.mktemp('lab')
    settings = d/'settings'/'@jupyterlab'/'docmanager-extension'
    settings.mkdir(parents=True)
    (settings/'plugin.jupyterlab-settings').write_text(json.dumps({'autosave': False}))
    port, log = free_port(), d/'lab.log'
    env = {**os.environ, 'JUPYTERLAB_SETTINGS_DIR': str(d/'settings'), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    with open(log, 'wb') as f:
        p = subprocess.Popen(['make', 'lab', f'LAB_PORT={port}', 'LAB_ARGS=--expose-app-in-browser'], cwd=ROOT, env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    url, t = None, time.time()
    while url is None and time.time() - t < 120:
        assert p.poll() is None, f"make lab exited with {p.returncode}:\n{log.read_text()[-3000:]}"
        m = re.search(rf"http://(?:127\.0\.0\.1|localhost):{port}/lab\?token=(\w+)", log.read_text())
        url = m and m.group(0)
        time.sleep(0.3)
    assert url, f"make lab printed no URL with a token:\n{log.read_text()[-3000:]}"
    yield url, port, m.group(1), log
    os.killpg(p.pid, signal.SIGTERM)
    try: p.wait(20)
    except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL)

def test_make_lab_serves_lab_with_the_recnb_kernel(lab):
    url, port, token, log = lab
    assert httpx.get(url, timeout=30).status_code == 200
    specs = httpx.get(f"http://127.0.0.1:{port}/api/kernelspecs", params={'token': token}, timeout=30).json()['kernelspecs']
    assert specs['recnb']['spec']['display_name'] == 'recnb (.venv)'
    assert Path(specs['recnb']['spec']['argv'][0]).resolve() == (ROOT/'.venv'/'bin'/'python').resolve()  # the venv's Python
    assert (ROOT/'.venv'/'share'/'jupyter'/'kernels'/'recnb').is_dir()  # installed into the venv, not the home

RUN_ALL = """
const done = arguments[arguments.length - 1];
(async () => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path: arguments[0], factory: 'Notebook', kernel: {name: 'recnb'}});
  await panel.context.ready; await panel.sessionContext.ready;
  if (panel.sessionContext.session.kernel.name !== 'recnb') await panel.sessionContext.changeKernel({name: 'recnb'});  // the notebooks name python3
  const ok = await app.commands.execute('notebook:run-all-cells');
  const cells = panel.content.model.cells, errors = [];
  let run = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    if (c.executionCount) run++;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  const code = [...Array(cells.length).keys()].filter(i => cells.get(i).type === 'code').length;
  const shown = [...Array(cells.length).keys()].find(i => cells.get(i).sharedModel.getSource().includes("m.card['chosen']"));
  panel.content.activeCellIndex = shown; await panel.content.scrollToItem(shown, 'start');  // a fit and its output, for the screenshot
  done({ok, run, code, errors, shown, kernel: panel.sessionContext.session.kernel.name});
})().catch(e => done({failed: String(e)}));
"""

def test_a_whole_notebook_runs_in_the_recnb_kernel(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    url, port, token, log = lab
    before = (ROOT/'nbs'/NOTEBOOK).read_bytes()
    b = chrome()
    try:
        b.set_script_timeout(600)
        b.get(url)
        WebDriverWait(b, 90).until(lambda b: b.execute_script('return !!(window.jupyterapp && window.jupyterapp.shell)')
                                   and b.find_elements(By.CSS_SELECTOR, '.jp-DirListing-item'))
        r = b.execute_async_script(RUN_ALL, NOTEBOOK)
        assert 'failed' not in r, r
        assert r['kernel'] == 'recnb' and r['ok'] is True and not r['errors'], r
        assert r['run'] == r['code'] > 20, r  # every code cell ran
        WebDriverWait(b, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, '.jp-OutputArea-output'))
        for no in b.find_elements(By.XPATH, "//button[normalize-space()='No']"): no.click()  # the news question, out of the picture
        time.sleep(1)
        OUT.mkdir(exist_ok=True)
        b.save_screenshot(str(OUT/'screenshot-lab.png'))
        assert 'recnb (.venv)' in b.find_element(By.CSS_SELECTOR, '.jp-NotebookPanel-toolbar').text  # the kernel, as the toolbar names it
    finally: b.quit()
    assert (ROOT/'nbs'/NOTEBOOK).read_bytes() == before  # autosave off: the source is untouched
