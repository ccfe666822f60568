"""A new user's own data, day one and day two, as issue 23 tried it: 300 books named by SKU, 400 readers named
by UUID, ISO 8601 times, re-reads; a model named after the data directory; an ingest with repeats (refused the
second time); a forced retrain that is promoted because it is better; the service speaking the user's ids."""
import json
from pathlib import Path
import httpx, pandas as pd, pytest
from conftest import API_KEY, Server, env_for, recnb
from recnb.retraining import holdout_split
from recnb.synthetic import as_own_ids, synthetic_dataset, with_repeats

@pytest.fixture(scope='module')
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp('shop')
    items, inter = synthetic_dataset(300, 400, 5_300, n_topics=12, seed=11)
    inter = with_repeats(inter.assign(timestamp=inter.timestamp - 200_000_000), 0.1, seed=11)  # 2014-2020, 10% re-reads
    items, inter = as_own_ids(items, inter, item_prefix='BK')
    old, new = holdout_split(inter.sort_values('timestamp', kind='stable'), 0.3)  # ISO times in one zone sort as text
    (root/'books').mkdir()
    items.to_csv(root/'books'/'items.csv', index=False); old.to_csv(root/'books'/'interactions.csv', index=False)
    new.to_csv(root/'new.csv', index=False)
    env = env_for(root/'home', RECNB_DATA_DIR=root/'books', RECNB_API_KEY=API_KEY, RECNB_MLFLOW_MIRROR='false', RECNB_REGISTRY_POLL_SECONDS=0.2)
    return dict(root=root, env=env, items=items, old=old, new=new)

def test_day_one_and_day_two(shop):
    env, new = shop['env'], shop['new']
    out = recnb('train', '--quiet', env=env).stdout
    assert 'trained books 1.0.0' in out and 'named after the data directory' in out and 'RECNB_MODEL_NAME' in out, out
    assert "item ids are strings (e.g. 'BK" in out and 'user ids are strings' in out, out
    recnb('models', 'promote', '--if-none', env=env)
    reader = new.user_id.iloc[0]
    got = json.loads(recnb('recommend', '--user', reader, '--k', '5', '--json', env=env).stdout)
    assert not got['cold_start'] and all(i['item_id'].startswith('BK') for i in got['items']), got
    r = recnb('ingest', str(shop['root']/'new.csv'), env=env)
    assert f"ingested {len(new)} interactions" in r.stdout
    r = recnb('ingest', str(shop['root']/'new.csv'), env=env, check=False)
    assert r.returncode == 2 and 'already ingested' in r.stderr and '--allow-duplicate' in r.stderr, r.stderr
    job = json.loads(recnb('retrain', '--force', '--json', env=env, timeout=1200).stdout)
    c = job['comparison']
    assert job['state'] == 'succeeded' and job['promoted'] is True, job
    assert (c['outcome'], c['production_scored']) == ('better', 'as served') and c['n_repeats'] > 0, c
    assert c['candidate']['ndcg@10'] > c['production']['ndcg@10']
    srv = Server(env, shop['root']/'server.log')
    try:
        body = httpx.post(srv.url + '/recommend', json={'user_id': reader, 'k': 5}, timeout=30).json()
        assert body['model_name'] == 'books' and body['model_version'] == job['version'] and not body['cold_start'], body
        assert all(isinstance(i['item_id'], str) and i['item_id'].startswith('BK') for i in body['items'])
        seen = set(shop['old'].item_id[shop['old'].user_id == reader]) | set(new.item_id[new.user_id == reader])
        assert not seen & {i['item_id'] for i in body['items']}
        r = httpx.post(srv.url + '/recommend', json={'user_id': reader, 'filters': {'genres': ['Animaton']}}, timeout=30)
        assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'filters', 'genres'] and 'did you mean' in r.json()['detail'][0]['msg'], r.text
        ev = {'events': [{'user_id': 'a-brand-new-reader', 'item_id': shop['items'].item_id[3], 'timestamp': '2020-06-01T12:00:00+02:00'}]}
        r = httpx.post(srv.url + '/events', json=ev, headers={'X-API-Key': API_KEY}, timeout=30)
        assert r.status_code == 200, r.text
        body = httpx.post(srv.url + '/recommend', json={'user_id': 'a-brand-new-reader', 'k': 3}, timeout=30).json()
        assert not body['cold_start'] and shop['items'].item_id[3] not in {i['item_id'] for i in body['items']}, body
    finally: srv.stop()

def test_empty_files_are_named_before_anything_is_embedded(shop, tmp_path):
    d = tmp_path/'empty'; d.mkdir()
    shop['items'].to_csv(d/'items.csv', index=False); (d/'interactions.csv').write_text('user_id,item_id,rating,timestamp\n')
    r = recnb('train', env=env_for(tmp_path/'home', RECNB_DATA_DIR=d), check=False)
    assert r.returncode == 2 and 'interactions.csv: no rows: the file has a header only; add one row per interaction' in r.stderr, r.stderr
    assert 'embedding' not in r.stderr.lower() and not (tmp_path/'home'/'cache').exists()
    (d/'interactions.csv').write_text('user_id,item_id,rating,timestamp\nr1,BK0001,1,2020-01-01T00:00:00Z\nr2,BK9999,1,2020-01-01T00:00:00Z\n')
    r = recnb('train', env=env_for(tmp_path/'home', RECNB_DATA_DIR=d), check=False)
    assert r.returncode == 2 and "interactions.csv: row 2, field 'item_id': unknown item 'BK9999': it is not in items.csv" in r.stderr, r.stderr
