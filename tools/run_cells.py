#!/usr/bin/env python
"""Run notebooks' cells in order in one namespace per notebook, without Jupyter or nbdev (for machines that have
only torch, e.g. a GPU box). Cells flagged `#| slow` or `#| cuda` run only when the flag is given, as with nbdev_test.

    python tools/run_cells.py nbs/01_model.ipynb [more.ipynb ...] [--flags cuda slow]
"""
import argparse, json, os, sys, time, types
from pathlib import Path

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='+'); ap.add_argument('--flags', nargs='*', default=[])
    a = ap.parse_args()
    os.environ.setdefault('MPLBACKEND', 'Agg')
    if 'nbdev' not in sys.modules:                     # notebooks import show_doc for the docs; not needed to run them
        nbdev = types.ModuleType('nbdev'); sd = types.ModuleType('nbdev.showdoc'); sd.show_doc = lambda *x, **k: None
        nbdev.showdoc = sd; sys.modules['nbdev'] = nbdev; sys.modules['nbdev.showdoc'] = sd
    failed = 0
    for nb in map(Path, a.notebooks):
        cells = json.loads(nb.read_text())['cells']
        ns = {'__name__': '__main__'}; cwd = os.getcwd(); os.chdir(nb.parent); t0 = time.time()
        try:
            for i, c in enumerate(cells):
                if c['cell_type'] != 'code': continue
                src = ''.join(c['source'])
                flags = [l.split('|', 1)[1].split() for l in src.splitlines() if l.startswith('#|')]
                tst = {w for f in flags for w in f if w in ('slow', 'cuda')}
                if tst - set(a.flags) or any(f[:2] == ['eval:', 'false'] for f in flags): continue
                t = time.time()
                exec(compile(src, f'{nb.name}[{i}]', 'exec'), ns)
                if tst: print(f"{nb.name} cell {i} ({' '.join(sorted(tst))}): ok in {time.time() - t:.1f} s", flush=True)
            print(f"{nb.name}: all cells ran in {time.time() - t0:.0f} s", flush=True)
        except Exception as e:
            failed += 1; import traceback; traceback.print_exc(); print(f"{nb.name}: FAILED at cell {i}", flush=True)
        finally: os.chdir(cwd)
    sys.exit(1 if failed else 0)

if __name__ == '__main__':
    main()
