"""Drift detection: recnb's per-column decisions against Evidently's default data-drift preset.

1,000,000 rows x 10 columns (6 numerical, 4 categorical), some shifted, the shifts kept clear of the
thresholds (a normed Wasserstein distance of 0.1 is a mean shift of about 0.1 sd: the shifted columns
move 0.5 sd or more, the others not at all). Both see the same data and the same column kinds.
Evidently runs in its own environment under .bench/evidently (created on first run: it needs pandas < 3).
Target: the same decision for every column, and recnb at least 10x faster.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd
from recnb.drift import data_drift

ROOT = Path(__file__).resolve().parent.parent
NUM, CAT = [f"n{i}" for i in range(6)], [f"c{i}" for i in range(4)]

def make(n, seed=0):
    rng = np.random.default_rng(seed)
    def frame(shift):
        d = {}
        for i, c in enumerate(NUM):
            loc, scale = (0.6 * (i % 2 + 1), 1.0) if shift and i < 3 else (0.0, 1.0)
            if shift and i == 3: scale = 2.0  # a change of spread, not of mean
            d[c] = rng.normal(loc, scale, n) * (1 + i) + 10 * i
        probs = [0.4, 0.3, 0.2, 0.1]
        for i, c in enumerate(CAT):
            p = [0.1, 0.2, 0.3, 0.4] if shift and i < 2 else probs
            d[c] = rng.choice(['a', 'b', 'c', 'd'], n, p=p)
        return pd.DataFrame(d)
    return frame(False), frame(True)

def evidently_env(d:Path)->Path:
    py = d/'bin'/'python'
    if not py.exists():
        print(f"creating {d} for Evidently (pandas < 3) ...", flush=True)
        subprocess.run([sys.executable, '-m', 'venv', str(d)], check=True)
        subprocess.run([str(d/'bin'/'pip'), 'install', '-q', 'evidently==0.7.23', 'pandas<3', 'pyarrow'], check=True)
    return py

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rows', type=int, default=1_000_000)
    ap.add_argument('--env', type=Path, default=ROOT/'.bench'/'evidently')
    a = ap.parse_args()
    ref, cur = make(a.rows)
    d = ROOT/'.bench'/'drift'; d.mkdir(parents=True, exist_ok=True)
    ref.to_parquet(d/'reference.parquet'); cur.to_parquet(d/'current.parquet')
    kinds = {**{c: 'numerical' for c in NUM}, **{c: 'categorical' for c in CAT}}
    data_drift(ref.head(2000), cur.head(2000), kinds=kinds)  # warm-up
    t = time.perf_counter(); rep = data_drift(ref, cur, kinds=kinds); t_recnb = time.perf_counter() - t
    out = subprocess.run([str(evidently_env(a.env)), str(ROOT/'bench'/'evidently_drift.py'), str(d/'reference.parquet'),
                          str(d/'current.parquet'), ','.join(NUM), ','.join(CAT)], capture_output=True, text=True)
    if out.returncode: raise SystemExit(f"Evidently failed:\n{out.stderr[-3000:]}")
    ev = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{a.rows} rows x {len(kinds)} columns")
    print(f"{'column':<8}{'recnb method':<15}{'statistic':>11}{'drift':>7}   {'Evidently method':<32}{'value':>11}{'drift':>7}")
    same = 0
    for c in rep.columns:
        e = ev['columns'][c.column]
        same += c.drifted == e['drifted']
        print(f"{c.column:<8}{c.method:<15}{c.statistic:>11.4f}{str(c.drifted):>7}   {e['method']:<32}{e['value']:>11.4f}{str(e['drifted']):>7}")
    print(f"data set drifted: recnb {rep.drifted} (share {rep.share_drifted:.2f})")
    print(f"recnb {t_recnb:.2f} s; Evidently {ev['seconds']:.2f} s (+{ev['import_seconds']:.1f} s import)")
    print(f"same decision on {same} of {len(rep.columns)} columns (target: all)")
    print(f"ratio Evidently / recnb time: {ev['seconds'] / t_recnb:.1f} (target >= 10)")

if __name__ == '__main__': main()
