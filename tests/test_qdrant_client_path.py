"The qdrant-client code path (a Qdrant server's) serves the same answers as the embedded default."
import shutil
from fastapi.testclient import TestClient
from recnb.config import Settings
from recnb.usecases import Context, production_model
from recnb.serving import create_app
from recnb.vectorstore import ClientStore, EdgeStore, open_store

def test_client_store_matches_edge(home, tmp_path):
    h = tmp_path/'home'
    for d in ('registry', 'models'): shutil.copytree(home/d, h/d)  # the session's saved models, without their vector index
    edge = Settings(home=h)
    local = Settings(home=h, embedded_backend='local')
    es, cs = open_store(edge), open_store(local)
    assert isinstance(es, EdgeStore) and isinstance(cs, ClientStore)
    me, mc = production_model(Context(edge), es), production_model(Context(local), cs)  # both re-index from the saved artifacts
    assert cs.count(mc.collection) == mc.n_items
    for uid in (1, 2, 414):
        a, b = me.recommend(user_id=uid, k=10), mc.recommend(user_id=uid, k=10)
        assert [x.item_id for x in a.items] == [x.item_id for x in b.items]
    assert [x.item_id for x in me.recommend(user_id=999999, k=5).items] == [x.item_id for x in mc.recommend(user_id=999999, k=5).items]
    es.close(); cs.close()
    with TestClient(create_app(local)) as c:
        j = c.post('/recommend', json={'query': 'animated movie about toys', 'k': 5}).json()
        assert any(x['title'].startswith('Toy Story') for x in j['items'])
