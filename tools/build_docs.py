#!/usr/bin/env python
"""The notebooks as a static HTML site, without Quarto: one page per notebook (in the order of nbs/sidebar.yml), a
navigation bar on every page, links between notebooks pointing at their pages. Cells flagged `#| hide` are left out
and nbdev's `#|` directives are not shown; outputs stored in the notebooks are shown as they are.

    python tools/build_docs.py [--out _site]      # then open _site/index.html

Machines with Quarto can build the full nbdev site with `nbdev_docs` instead.
"""
import argparse, copy, html, json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CSS = """
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; }
nav { position: fixed; top: 0; left: 0; bottom: 0; width: 15rem; overflow-y: auto; background: #f6f7f9;
      border-right: 1px solid #ddd; padding: 1rem 0.8rem; box-sizing: border-box; font-size: 0.92rem; }
nav a { display: block; padding: 0.25rem 0.4rem; color: #1f4e99; text-decoration: none; border-radius: 4px; }
nav a.here { background: #1f4e99; color: #fff; }
nav .title { font-weight: 700; font-size: 1.1rem; margin-bottom: 0.6rem; }
main { margin-left: 15rem; padding: 1rem 2.5rem 4rem; max-width: 62rem; }
pre, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85rem; }
.cell-code pre { background: #f7f7f7; border: 1px solid #e4e4e4; border-radius: 4px; padding: 0.6rem; overflow-x: auto; }
.cell-output pre { border-left: 3px solid #c9d6ea; padding-left: 0.6rem; overflow-x: auto; }
.cell-output img { max-width: 100%; }
table { border-collapse: collapse; } td, th { border: 1px solid #ddd; padding: 0.2rem 0.5rem; }
"""

def order(nbs:Path) -> list:
    "Notebook names in the sidebar's order (then any others, sorted)."
    side = nbs/'sidebar.yml'
    names = re.findall(r'^\s*-\s*(\S+\.ipynb)\s*$', side.read_text(), re.M) if side.is_file() else []
    names = [n for n in names if (nbs/n).is_file()]
    return names + sorted(p.name for p in nbs.glob('*.ipynb') if p.name not in names)

def title(nb:dict, name:str) -> str:
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
            if m: return m.group(1).strip()
    return name

def page_name(nb_name:str) -> str: return Path(nb_name).with_suffix('.html').name

def prepare(nb:dict) -> dict:
    "Drop hidden cells and nbdev directives; code cells with nothing left are dropped."
    nb = copy.deepcopy(nb); cells = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code':
            lines = src.splitlines()
            flags = [l for l in lines if l.startswith('#|')]
            if any(re.match(r'#\|\s*(hide|include:\s*false)', l) for l in flags): continue
            src = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            if not src and not c.get('outputs'): continue
        c['source'] = src; cells.append(c)
    nb['cells'] = cells
    nb['nbformat_minor'] = min(nb.get('nbformat_minor', 4), 4)       # nbdev_clean strips cell ids, which 4.5+ would want
    return nb

def fix_links(body:str, names:set) -> str:
    "href='x.ipynb' (or nbs/x.ipynb, x.ipynb#anchor) -> 'x.html' for notebooks of the site."
    def sub(m):
        target, anchor = m.group(2), m.group(3) or ''
        base = Path(target).name
        return f'{m.group(1)}{page_name(base)}{anchor}"' if base in names else m.group(0)
    return re.sub(r'(href=")((?:\./|nbs/)?[\w\-.]+\.ipynb)(#[^"]*)?"', sub, body)

def build(out:Path, nbs:Path=ROOT/'nbs') -> list:
    "Write the site into `out`; returns the pages written."
    from nbconvert import HTMLExporter
    import nbformat
    from pygments.formatters import HtmlFormatter
    names = order(nbs)
    if not names: raise SystemExit(f"no notebooks in {nbs}")
    nbs_json = {n: json.loads((nbs/n).read_text()) for n in names}
    titles = {n: title(nbs_json[n], n) for n in names}
    exp = HTMLExporter(template_name='basic')
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    (out/'style.css').write_text(CSS + HtmlFormatter(style='default').get_style_defs('.highlight'))
    pages = []
    for n in names:
        nb = nbformat.from_dict(prepare(nbs_json[n]))
        body, _ = exp.from_notebook_node(nb)
        body = fix_links(body, set(names))
        here = lambda m: ' class="here"' if m == n else ''
        nav = ''.join(f'<a href="{page_name(m)}"{here(m)}>{html.escape(titles[m])}</a>' for m in names)
        page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(titles[n])} - mergedepth</title>\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<link rel="stylesheet" href="style.css">\n'
                f'<script>window.MathJax = {{tex: {{inlineMath: [["$", "$"]]}}}};</script>\n'
                f'<script async src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>\n'
                f'</head><body><nav><div class="title">mergedepth</div>{nav}</nav><main>\n{body}\n</main></body></html>\n')
        (out/page_name(n)).write_text(page)
        pages.append(out/page_name(n))
    return pages

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default=str(ROOT/'_site'), help='output folder (replaced)')
    a = ap.parse_args()
    pages = build(Path(a.out))
    print(f"wrote {len(pages)} pages to {a.out}; open {Path(a.out)/'index.html'}")

if __name__ == '__main__':
    main()
