"The MLflow mirror against a real `mlflow server` on 127.0.0.1, started by the test."
import subprocess, sys, time
from pathlib import Path
import httpx, mlflow, pandas as pd, pytest
from mlflow import MlflowClient
from conftest import BIN, env_for, free_port, recnb, start_mlflow
from recnb.config import Settings
from recnb.model import HybridRecommender
from recnb.registry import Registry, version_dir
from recnb.synthetic import synthetic_dataset, write_synthetic
from recnb.vectorstore import EdgeStore

def test_mirror_to_a_tracking_server(tmp_path):
    h = tmp_path/'home'
    data = write_synthetic(tmp_path/'movielens', *synthetic_dataset(400, 300, 6000, seed=3))  # small: this test is about the mirror
    port = free_port()
    env = env_for(h, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", RECNB_DATA_DIR=data)
    # MLflow down: the registry works, the version waits to be mirrored
    out = recnb('train', '--quiet', env=env).stdout
    assert 'trained movielens 1.0.0' in out
    reg = Registry(h/'registry')
    ml = reg.get('movielens', '1.0.0')['mlflow']
    assert not ml['mirrored'] and 'unreachable' in ml['error']
    r = recnb('models', 'sync', env=env, check=False)
    assert r.returncode == 1 and 'unreachable' in r.stderr  # the operation failed; the input was fine
    server = start_mlflow(tmp_path, port)
    try:
        assert 'mirrored 1 versions' in recnb('models', 'sync', env=env).stdout
        recnb('models', 'promote', 'movielens', '1.0.0', env=env)
        c = MlflowClient(f"http://127.0.0.1:{port}")
        mv = c.get_model_version_by_alias('movielens', 'production')
        assert mv.tags['recnb_version'] == '1.0.0' and mv.tags['recnb_stage'] == 'production'
        pf = mlflow.pyfunc.load_model(mlflow.artifacts.download_artifacts(  # as a user would, but leaving MLflow's global URIs alone
            c.get_model_version_download_uri('movielens', mv.version), tracking_uri=f"http://127.0.0.1:{port}"))
        got = pf.predict(pd.DataFrame([{'user_id': 1, 'k': 10}, {'items': [1, 2], 'k': 5}, {'user_id': 999999, 'k': 3}]))
        m = HybridRecommender.load(version_dir(h, reg.get('movielens', '1.0.0'))).index(EdgeStore(tmp_path/'v'))
        for i, kw in enumerate([dict(user_id=1, k=10), dict(items=[1, 2], k=5), dict(user_id=999999, k=3)]):
            want = m.recommend(**kw).items
            g = got[got.request == i]
            assert g.item_id.tolist() == [x.item_id for x in want]
            assert g.score.tolist() == pytest.approx([x.score for x in want], rel=1e-5)
    finally:
        server.terminate(); server.wait(30)
