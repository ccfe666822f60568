"End to end: the CLI trains on the bundled data, uvicorn serves the real app, requests go over HTTP."
import json
import httpx, numpy as np, pandas as pd
from recnb.data import load_movielens
from conftest import env_for, recnb

def post(server, body, **kw):
    return httpx.post(server.url + '/recommend', json=body, timeout=30, **kw)

def test_user_recommendations(server):
    r = post(server, {'user_id': 1, 'k': 10})
    assert r.status_code == 200, r.text
    j = r.json()
    assert j['model_version'] == '1.0.0' and j['request_id'] and r.headers['x-request-id'] == j['request_id']
    assert len(j['items']) == 10 and not j['cold_start']
    _, ratings = load_movielens()
    seen = set(ratings.item_id[ratings.user_id == 1])
    ids = [x['item_id'] for x in j['items']]
    assert not seen & set(ids) and len(set(ids)) == 10
    assert all(x['title'] and isinstance(x['score'], float) for x in j['items'])
    scores = [x['score'] for x in j['items']]
    assert scores == sorted(scores, reverse=True)

def test_text_query_finds_toy_story(server):
    j = post(server, {'query': 'animated movie about toys', 'k': 5}).json()
    assert any(x['title'].startswith('Toy Story') for x in j['items']), j

def test_cold_start(server):
    r = post(server, {'user_id': 999999, 'k': 5})
    assert r.status_code == 200
    j = r.json()
    assert j['cold_start'] is True and len(j['items']) == 5 and all(x['cold_start'] for x in j['items'])

def test_items_and_filters(server):
    j = post(server, {'items': [1, 3114], 'k': 5, 'filters': {'genres': ['Animation'], 'year_min': 1990, 'year_max': 2010}}).json()
    items, _ = load_movielens()
    by_id = items.set_index('item_id')
    assert len(j['items']) == 5
    for x in j['items']:
        assert 'Animation' in by_id.genres[x['item_id']] and 1990 <= by_id.year[x['item_id']] <= 2010
        assert x['item_id'] not in (1, 3114)

def test_bad_input_is_422_naming_the_field(server):
    r = post(server, {'user_id': 1, 'k': 0})
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'k']
    r = httpx.post(server.url + '/recommend', content=b'{"user_id": 1, "k": ', headers={'content-type': 'application/json'})
    assert r.status_code == 422 and 'JSON' in r.json()['detail'][0]['msg']
    r = post(server, {'user_id': 1, 'k': 101})
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'k']
    r = post(server, {'user_id': 1, 'filters': {'genre': ['x']}})
    assert r.status_code == 422 and r.json()['detail'][0]['loc'] == ['body', 'filters', 'genre']

def test_health_and_docs(server):
    h = httpx.get(server.url + '/health').json()
    assert h['status'] == 'ok' and h['model']['version'] == '1.0.0' and h['vector_store'] == 'EdgeStore'
    assert httpx.get(server.url + '/docs').status_code == 200

def test_second_train_embeds_nothing(trained):
    first, second = trained[1]
    assert 'trained movielens 1.0.0' in first and 'embedded 9742 of 9742 items' in first, first
    assert 'trained movielens 1.0.1' in second and 'embedded 0 of 9742 items (9742 from the cache)' in second, second

def test_cli_recommend_while_serving(home, server):
    "The CLI opens the same embedded collections as the running server."
    r = recnb('recommend', '--user', '1', '--k', '3', '--json', env=env_for(home))
    assert len(json.loads(r.stdout)['items']) == 3

def test_bad_data_is_rejected_whole(home, tmp_path):
    (tmp_path/'movies.csv').write_text('movieId,title,genres\n1,Toy Story (1995),Animation\n')
    (tmp_path/'ratings.csv').write_text('userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,1,five,964982704\n')
    before = sorted(p.name for p in (home/'models'/'movielens').iterdir())
    r = recnb('train', '--data', str(tmp_path), env=env_for(home), check=False)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0
    assert "ratings.csv: row 2, field 'rating'" in r.stderr
    (tmp_path/'ratings.csv').write_text('userId,movieId,timestamp\n1,1,964982703\n')
    r = recnb('train', '--data', str(tmp_path), env=env_for(home), check=False)
    assert r.returncode == 2 and "field 'rating': missing required column" in r.stderr
    assert sorted(p.name for p in (home/'models'/'movielens').iterdir()) == before

def test_drift_exit_codes(tmp_path):
    "The console script's exit status: 1 when drift is found, 0 when not, 2 on bad input."
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({'rating': rng.normal(3, 1, 2000), 'genre': rng.choice(list('abc'), 2000)})
    ref.to_csv(tmp_path/'ref.csv', index=False)
    ref.assign(rating=ref.rating + 1, genre='a').to_csv(tmp_path/'cur.csv', index=False)
    env = env_for(tmp_path/'home')
    assert recnb('drift', '--reference', str(tmp_path/'ref.csv'), '--current', str(tmp_path/'ref.csv'), env=env, check=False).returncode == 0
    r = recnb('drift', '--reference', str(tmp_path/'ref.csv'), '--current', str(tmp_path/'cur.csv'), env=env, check=False)
    assert r.returncode == 1 and 'DRIFT' in r.stdout
    r = recnb('drift', '--reference', str(tmp_path/'ref.csv'), '--current', str(tmp_path/'missing.csv'), env=env, check=False)
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0
