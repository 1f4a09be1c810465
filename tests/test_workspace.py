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
