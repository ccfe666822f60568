"""Run Evidently's default data-drift preset on two parquet files; print its decisions as JSON.

Runs in its own environment (Evidently 0.7 does not import with pandas 3); bench/drift.py creates it.
Usage: python evidently_drift.py REFERENCE.parquet CURRENT.parquet NUMERICAL,COLUMNS CATEGORICAL,COLUMNS
"""
import json, sys, time
import pandas as pd
t0 = time.perf_counter()
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
t_import = time.perf_counter() - t0
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
dd = DataDefinition(numerical_columns=sys.argv[3].split(','), categorical_columns=sys.argv[4].split(','))
t = time.perf_counter()
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd), Dataset.from_pandas(ref, data_definition=dd))
seconds = time.perf_counter() - t
cols = {}
for m in snap.dict()['metrics']:
    c = m['config']
    if c['type'].endswith('ValueDrift'):
        pval = 'p_value' in c['method']
        drifted = (m['value'] <= c['threshold'] if c['method'].startswith('K-S') else m['value'] < c['threshold']) if pval else m['value'] >= c['threshold']
        cols[c['column']] = dict(method=c['method'], value=m['value'], threshold=c['threshold'], drifted=bool(drifted))
print(json.dumps(dict(seconds=seconds, import_seconds=t_import, columns=cols)))
