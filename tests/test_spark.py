"Training on Apache Spark with a local master: the bundled data's training split through `recnb train`, promoted, served, and scored on the held-out split."
import shutil
import httpx, numpy as np
from recnb.data import bundled_data_dir, load_movielens, stratified_split
from recnb.evaluation import evaluate_model
from recnb.metrics import hit_matrix, ndcg_at_k, top_k
from recnb.model import HybridRecommender
from conftest import Server, env_for, recnb

def popularity_ndcg(m, train, test, k=10):
    "nDCG@k of ranking every unseen item by its training count, on the users `evaluate_model` scores."
    Xtr, Xte = m.interactions_matrix(train), m.interactions_matrix(test)
    users = np.flatnonzero(np.diff(Xte.indptr) > 0)
    S = np.tile(np.asarray(Xtr.sum(0), dtype=np.float64).ravel(), (len(users), 1))
    S[Xtr[users].nonzero()] = -np.inf
    return float(np.nanmean(ndcg_at_k(*hit_matrix(top_k(S, k), Xte[users]))))

def test_spark_train_promote_serve(home, tmp_path):
    _, ratings = load_movielens()
    train, test = stratified_split(ratings, 0.75, seed=42)
    data = tmp_path/'data'; data.mkdir()
    for f in ('movies.csv', 'tags.csv'): shutil.copy(bundled_data_dir()/f, data)
    train.rename(columns={'user_id': 'userId', 'item_id': 'movieId'}).to_csv(data/'ratings.csv', index=False)
    h = tmp_path/'home'
    shutil.copytree(home/'cache', h/'cache')  # the session's embeddings: this test is about the collaborative fit
    env = env_for(h, RECNB_SPARK_MASTER='local[2]', RECNB_DATA_DIR=data, RECNB_MLFLOW_MIRROR='false')
    assert 'trained movielens 1.0.0' in recnb('train', '--quiet', env=env, timeout=1200).stdout
    assert 'movielens 1.0.0' in recnb('models', 'promote', '--if-none', env=env).stdout
    m = HybridRecommender.load(h/'models'/'movielens'/'1.0.0')
    assert m.card['solver']['engine'] == 'spark' and m.card['solver']['master'] == 'local[2]'
    assert m.card['data']['n_interactions'] == len(train)
    hybrid, pop = evaluate_model(m, train, test).means['ndcg'], popularity_ndcg(m, train, test)
    assert hybrid >= 1.5*pop, (hybrid, pop)
    s = Server(env_for(h, RECNB_DATA_DIR=data, RECNB_MLFLOW_MIRROR='false'), h/'server.log')
    try:
        j = httpx.post(s.url + '/recommend', json={'user_id': 1, 'k': 10}, timeout=30).json()
        assert j['model_version'] == '1.0.0' and len(j['items']) == 10, j
        assert not set(train.item_id[train.user_id == 1]) & {x['item_id'] for x in j['items']}
    finally: s.stop()
