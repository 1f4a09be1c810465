"The installed package matches settings.ini: version and console scripts."
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
