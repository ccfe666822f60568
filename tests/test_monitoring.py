"Monitoring and logging on the real server: Prometheus counters, one JSON log line per request, rotation, anomalies and alerts, readiness."
import http.server, json, shutil, threading, time
import httpx, pytest
from prometheus_client.parser import text_string_to_metric_families
from conftest import API_KEY, Server, env_for, free_port

class Hook(http.server.BaseHTTPRequestHandler):
    got = []
    def do_POST(self):
        Hook.got.append(json.loads(self.rfile.read(int(self.headers['content-length']))))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass

@pytest.fixture(scope='module')
def mon(home, tmp_path_factory):
    h = tmp_path_factory.mktemp('mon-home')
    for d in ('registry', 'models'): shutil.copytree(home/d, h/d)  # the session's saved models, without their vector index
    hook = http.server.HTTPServer(('127.0.0.1', 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    rules = [dict(name='slow', metric='latency_ms', window='1m', stat='p95', condition='>', threshold=300., cooldown=300.)]
    s = Server(env_for(h, RECNB_API_KEY=API_KEY, RECNB_FAULT_INJECTION='true', RECNB_ALERT_RULES=json.dumps(rules),
                       RECNB_ALERT_WEBHOOK=f"http://127.0.0.1:{hook.server_port}/alerts", RECNB_MONITOR_INTERVAL=0.2,
                       RECNB_LOG_MAX_BYTES=20000, RECNB_LOG_BACKUPS=1000), h/'server.log')
    yield s, h
    s.stop(); hook.shutdown()

def metric(text, name, **labels):
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == name and all(smp.labels.get(k) == v for k,v in labels.items()): return smp.value
    return None

def test_prometheus_counts_and_log_lines(mon):
    s, h = mon
    ids = []
    with httpx.Client(timeout=30) as c:
        for i in range(200):
            r = c.post(s.url + '/recommend', json={'user_id': 1 + i % 600, 'k': 10}, headers={'X-Request-ID': f"req-{i}"} if i % 2 else {})
            assert r.status_code == 200
            assert r.headers['x-request-id'] == r.json()['request_id']
            ids.append(r.headers['x-request-id'])
        text = c.get(s.url + '/metrics').text
    assert metric(text, 'recnb_requests_total', endpoint='/recommend', status='200') == 200
    assert metric(text, 'recnb_request_duration_seconds_count', endpoint='/recommend') == 200
    assert 'user' not in text.split('recnb_requests_total')[1].split('\n')[0]  # no per-user label
    time.sleep(0.5)
    files = sorted((h/'logs').glob('recnb.log*'))
    assert len(files) > 2, files  # rotated at 20 kB
    lines = [json.loads(l) for f in files for l in f.read_text().splitlines() if l.strip()]
    req = [l for l in lines if l.get('message') == 'request' and l.get('path') == '/recommend']
    assert len(req) == 200 and sorted(l['request_id'] for l in req) == sorted(ids)
    assert all(l['logger'] == 'recnb.api' and l['status'] == 200 for l in req)

def test_latency_spike_raises_anomaly_and_one_alert(mon):
    s, _ = mon
    with httpx.Client(timeout=30) as c:
        for i in range(40): c.post(s.url + '/recommend', json={'user_id': 1 + i, 'k': 10})
        time.sleep(0.5)  # the baseline is refreshed
        assert c.post(s.url + '/debug/faults', json={'latency_ms': 400}).status_code == 401
        assert c.post(s.url + '/debug/faults', json={'latency_ms': 400}, headers={'X-API-Key': API_KEY}).status_code == 200
        try:
            for i in range(25): assert c.post(s.url + '/recommend', json={'user_id': 1 + i, 'k': 10}).status_code == 200
            time.sleep(1.5)  # several monitoring ticks inside the cooldown
        finally: c.post(s.url + '/debug/faults', json={'latency_ms': 0}, headers={'X-API-Key': API_KEY})
        summary = c.get(s.url + '/metrics/summary').json()
    assert summary['anomalies'] and summary['anomalies'][0]['zscore'] > 3
    assert len(Hook.got) == 1 and Hook.got[0]['alert'] == 'slow' and Hook.got[0]['value'] > 300
    assert len(summary['alerts']) == 1

def test_vector_store_unavailable(home, tmp_path):
    h = tmp_path/'home'
    for d in ('registry', 'models'): shutil.copytree(home/d, h/d)
    s = Server(env_for(h, RECNB_QDRANT_URL=f"http://127.0.0.1:{free_port()}"), h/'server.log', ready='/livez')
    try:
        assert httpx.get(s.url + '/livez').status_code == 200
        r = httpx.get(s.url + '/readyz')
        assert r.status_code == 503 and 'vector_store' in r.json()['failing']
        r = httpx.get(s.url + '/health')
        assert r.status_code == 503 and 'vector_store' in r.json()['failing']
        r = httpx.post(s.url + '/recommend', json={'user_id': 1, 'k': 5})
        assert r.status_code == 503 and 'vector store unavailable' in r.json()['detail']
    finally: s.stop()
