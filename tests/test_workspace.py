"The installed package matches settings.ini (version, console scripts); README and docs links resolve; the docs build without Quarto."
import configparser, importlib, json
from pathlib import Path
import mergedepth

ROOT = Path(__file__).resolve().parents[1]
CFG = configparser.ConfigParser(delimiters=['=']); CFG.read(ROOT/'settings.ini')

def test_version_matches_settings():
    assert mergedepth.__version__ == CFG['DEFAULT']['version']

def test_console_scripts_resolve():
    for entry in CFG['DEFAULT'].get('console_scripts', '').split():
        name, target = entry.split('=')
        mod, fn = target.split(':')
        assert callable(getattr(importlib.import_module(mod), fn)), entry

def test_readme_and_index_links_resolve():
    "Every relative link of README.md exists from the repository root, and every one of nbs/index.ipynb from nbs/ (the docs site)."
    import json, re
    link = re.compile(r'\]\(([^)#\s]+)(?:#[^)]*)?\)')
    readme = (ROOT/'README.md').read_text()
    index = ''.join(''.join(c['source']) for c in json.loads((ROOT/'nbs'/'index.ipynb').read_text())['cells'])
    for text, base in ((readme, ROOT), (index, ROOT/'nbs')):
        targets = [t for t in link.findall(text) if not re.match(r'[a-z]+:', t)]
        assert targets, base
        missing = [t for t in targets if not (base/t).exists()]
        assert not missing, (base, missing)

def test_docs_build_without_quarto(tmp_path):
    "tools/build_docs.py renders every notebook of the sidebar as a page with navigation; every local link of the site resolves."
    import re, subprocess, sys
    p = subprocess.run([sys.executable, ROOT/'tools'/'build_docs.py', '--out', tmp_path/'site'], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    side = re.findall(r'^\s*-\s*(\S+\.ipynb)\s*$', (ROOT/'nbs'/'sidebar.yml').read_text(), re.M)
    pages = {f.name for f in (tmp_path/'site').glob('*.html')}
    assert pages == {Path(n).with_suffix('.html').name for n in side}, pages
    broken = []
    for page in (tmp_path/'site').glob('*.html'):
        text = page.read_text()
        assert text.count('<nav>') == 1 and all(f'href="{q}"' in text for q in pages), page.name   # every page links every page
        for t in re.findall(r'(?:href|src)="([^"]+)"', text):
            if re.match(r'[a-z]+:|#|data:', t): continue
            if not (page.parent/t.split('#')[0]).exists(): broken.append((page.name, t))
    assert not broken, broken[:10]

def test_repository_stays_small():
    "Tracked files (not history) stay under 8 MB; nothing over 1 MB but notebooks, whose figures are stored as JPEG (run them with figure format jpeg)."
    import json, subprocess
    files = [ROOT/f for f in subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()]
    files = [f for f in files if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    assert total <= 8e6, f"{total / 1e6:.1f} MB tracked: " + ', '.join(f'{f.name} {f.stat().st_size / 1e6:.1f} MB' for f in sorted(files, key=lambda f: -f.stat().st_size)[:5])
    big = [f.name for f in files if f.stat().st_size > 1e6 and f.suffix != '.ipynb']
    assert not big, big
    for nb in (f for f in files if f.suffix == '.ipynb'):
        for c in json.loads(nb.read_text())['cells']:
            for o in c.get('outputs', []):
                assert 'image/png' not in o.get('data', {}) or len(o['data']['image/png']) < 3e5, (nb.name, 'a large PNG figure: store it as JPEG')

FLOORS = {'io': 0, 'geometry': 0, 'model': 1, 'losses': 1, 'data': 1, 'evaluate': 1, 'binocular': 2, 'synth': 2, 'testing': 1, 'train': 3, 'infer': 3, 'fit': 4,
          'quickstart': 5}

def test_imports_point_down():
    "Each module imports only modules on a lower floor (../shared/DESIGN.md, section 1); every module has a floor."
    import ast
    mods = {p.stem for p in (ROOT/'mergedepth').glob('*.py') if not p.stem.startswith('_')}
    assert mods == set(FLOORS), mods ^ set(FLOORS)
    for m in mods:
        tree = ast.parse((ROOT/'mergedepth'/f'{m}.py').read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('mergedepth')):
                dep = (node.module or '').split('.')[-1]
                if dep in FLOORS: assert FLOORS[dep] < FLOORS[m], f"{m} (floor {FLOORS[m]}) imports {dep} (floor {FLOORS[dep]})"

def test_library_lines_fit():
    "No library line is longer than 120 characters, those nbdev writes (a notebook's subtitle, `__all__`) aside."
    long = [f'{p.name}:{i}' for p in sorted((ROOT/'mergedepth').glob('*.py')) if p.name != '_modidx.py'
            for i, l in enumerate(p.read_text().splitlines(), 1) if len(l) > 120 and not (i == 1 and l.startswith('"""')) and not l.startswith('__all__')]
    assert not long, f"{len(long)} lines over 120 characters: {long[:10]}"

def test_every_export_has_an_example():
    "Each exported cell (imports aside) is followed by a code cell that is not exported, at most a paragraph in between."
    lonely = []
    for nb in sorted((ROOT/'nbs').glob('[0-9]*.ipynb')):
        cells = [(c['cell_type'], ''.join(c['source'])) for c in json.loads(nb.read_text())['cells']]
        for i, (kind, src) in enumerate(cells):
            body = [l for l in src.splitlines() if l.strip() and not l.startswith('#|')]
            if kind != 'code' or not src.startswith('#| export') or all(l.startswith(('import ', 'from ')) for l in body):
                continue
            nxt = [s for k, s in cells[i + 1:i + 3] if k == 'code'][:1]
            if not nxt or nxt[0].startswith('#| export'): lonely.append(f'{nb.name}: {body[0][:60]}')
    assert not lonely, lonely

def test_functions_stay_short():
    "No library function is longer than 60 lines (a longer one is several ideas: split it)."
    import ast
    long = []
    for p in sorted((ROOT/'mergedepth').glob('[a-z]*.py')):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno >= 60:
                long.append(f'{p.name}:{n.name} ({n.end_lineno - n.lineno + 1} lines)')
    assert not long, long
