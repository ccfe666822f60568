"""The OpenAPI description is the contract: schemathesis runs every check and every phase (stateful included)
against `recnb serve`, with and without the API key, and finds nothing."""
import subprocess
from pathlib import Path
import pytest
from conftest import copy_home, API_KEY, BIN, Server, env_for

CONFIG = Path(__file__).parent/'schemathesis.toml'

@pytest.fixture(scope='module')
def throwaway(home, tmp_path_factory):
    """`recnb serve` on a copy of the trained home: schemathesis promotes, rolls back and retrains at will.
    Retraining jobs fail at once (no retrain notebook in `RECNB_SCHEDULED_DIR`), so they cost nothing."""
    root = tmp_path_factory.mktemp('contract')
    h, empty = root/'home', root/'no-notebooks'
    empty.mkdir()
    copy_home(home, h)
    s = Server(env_for(h, RECNB_API_KEY=API_KEY, RECNB_FAULT_INJECTION=1, RECNB_SCHEDULED_DIR=empty, RECNB_MLFLOW_MIRROR=0), root/'server.log')
    yield s, root
    s.stop()

@pytest.mark.parametrize('key', [True, False], ids=['with-key', 'without-key'])
def test_schemathesis_finds_nothing(throwaway, key):
    s, root = throwaway
    cmd = [str(BIN/'schemathesis'), '--config-file', str(CONFIG), '--no-color', 'run', s.url + '/openapi.json',
           '--checks', 'all', '--phases', 'examples,coverage,fuzzing,stateful', '--max-examples', '30', '--request-timeout', '30']
    # With the key, POST /debug/faults would add up to a minute to every /recommend that follows; without it, it is a 401.
    if key: cmd += ['--header', f'X-API-Key: {API_KEY}', '--exclude-path', '/debug/faults']
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)  # cwd: its caches stay out of the checkout
    out = r.stdout + r.stderr
    assert r.returncode == 0 and 'Stateful (in' in out and 'FAILURES' not in out, out[-6000:]
