"The installed package matches settings.ini (version, console scripts); README and docs links resolve; the docs build without Quarto."
import configparser, importlib
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
