"The baseline of bench/serving.py: a bare FastAPI endpoint returning a fixed payload."
from fastapi import FastAPI

app = FastAPI()
FIXED = {'model_name': 'bare', 'model_version': '0.0.0', 'request_id': 'x', 'cold_start': False,
         'items': [{'item_id': i, 'title': f'Movie {i}', 'score': 1.0/(i+1), 'cold_start': False} for i in range(10)]}

@app.post('/recommend')
async def recommend(): return FIXED
