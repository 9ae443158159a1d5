#!/usr/bin/env python
"""Build the documentation site offline, and the README, from the notebooks in `nbs/`.

    python docs/build_docs.py            # site into _docs/site (open _docs/site/index.html)
    python docs/build_docs.py --readme   # only rewrite README.md from nbs/index.ipynb

The site is MkDocs (Material theme): every notebook becomes a page rendered with its saved outputs (mkdocs-jupyter,
nothing is re-executed), every module gets an API reference page generated from its docstrings (mkdocstrings), and
BENCHMARKS.md is included. Quarto is not needed; nbdev's own configuration (`nbs/_quarto.yml`, `nbs/nbdev.yml`) is
kept so that `nbdev-docs` also works where quarto is installed.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, PKG = ROOT/'nbs', ROOT/'fastreid_vehicle'
SKIP_MODULES = {'__init__', '_modidx', 'all'}

def page_name(nb: Path) -> str:
    "Page file name of a notebook: numeric prefix dropped, as nbdev does (`00_readers.ipynb` -> `readers.ipynb`)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name)

def nb_title(nb: Path) -> str:
    "The first `# heading` of a notebook's markdown, else its page name."
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'markdown': continue
        src = ''.join(c['source'])
        m = re.search(r'^#\s+(.+)$', src, re.M)
        if m: return m.group(1).strip()
    return page_name(nb).removesuffix('.ipynb')

def notebooks(): return sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))

def modules(): return sorted(p.stem for p in PKG.glob('*.py') if p.stem not in SKIP_MODULES)

_BAR = re.compile(r'█?(?:Epoch \d+/\d+ :)?\s*\|[█\-]*\|\s*[\d.]+% \[[^\]]*\]')

def clean_progress(text:str) -> str:
    "Drop the console progress bars fastprogress prints outside Jupyter, keeping the table it logs."
    text = _BAR.sub('', text)
    text = re.sub(r'█?Epoch \d+/\d+ :\s*', '', text).replace('█', '')
    return '\n'.join(l.strip() for l in text.splitlines() if l.strip()) + '\n'

def _out_text(o):
    if o.get('output_type') == 'stream': return clean_progress(''.join(o.get('text', ''))) if o.get('name') == 'stdout' else ''
    data = o.get('data', {})
    if 'text/markdown' in data: return None
    return ''.join(data.get('text/plain', '')) if 'text/plain' in data else ''

def readme_text(nb: Path = NBS/'index.ipynb') -> str:
    "Markdown of the index notebook (markdown cells as written, code cells and their text outputs as code blocks)."
    parts = []
    for c in json.loads(nb.read_text())['cells']:
        src = ''.join(c['source']).strip()
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code':
            lines = [l for l in src.splitlines() if not l.startswith('#|')]
            if not lines: continue
            parts.append('```python\n' + '\n'.join(lines) + '\n```')
            outs = [t for t in map(_out_text, c.get('outputs', [])) if t]
            if outs: parts.append('```\n' + ''.join(outs).strip() + '\n```')
    return '<!-- Generated from nbs/index.ipynb by `python docs/build_docs.py --readme`: edit the notebook. -->\n\n' + '\n\n'.join(parts) + '\n'

def write_atomic(path: Path, text: str):
    "Write `text` to `path` through a temporary file in the same folder and a rename."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as f: f.write(text)
    os.replace(tmp, path)

def _clean_nb(nb: dict) -> dict:
    "Drop execution metadata (execnb timings) that nbformat's schema rejects, and nbdev directive-only lines."
    nb['cells'] = [c for c in nb['cells'] if not re.search(r'^#\|\s*hide\s*$', ''.join(c['source']), re.M)]
    for c in nb['cells']:
        c.get('metadata', {}).pop('execution', None)
        c['outputs'] = [o for o in c.get('outputs', []) if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')]
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream': o['text'] = clean_progress(''.join(o.get('text', '')))
        if c['cell_type'] == 'code':
            src = ''.join(c['source']).splitlines(True)
            c['source'] = ''.join(l for l in src if not l.startswith('#|'))
    return nb

def stage(dest: Path) -> Path:
    "Lay out the MkDocs source tree (pages, API stubs, config) in `dest`; return the config path."
    if dest.exists(): shutil.rmtree(dest)
    (dest/'api').mkdir(parents=True)
    nav_nbs = []
    for nb in notebooks():
        (dest/page_name(nb)).write_text(json.dumps(_clean_nb(json.loads(nb.read_text()))))
        if nb.name != 'index.ipynb': nav_nbs.append({nb_title(nb): page_name(nb)})
    if (NBS/'images').exists(): shutil.copytree(NBS/'images', dest/'images')
    nav_api = []
    for m in modules():
        (dest/'api'/f'{m}.md').write_text(f'# `fastreid_vehicle.{m}`\n\n::: fastreid_vehicle.{m}\n')
        nav_api.append({m: f'api/{m}.md'})
    nav = [{'Home': 'index.ipynb'}, {'Guide': nav_nbs}, {'API reference': nav_api}]
    if (ROOT/'BENCHMARKS.md').exists():
        shutil.copy(ROOT/'BENCHMARKS.md', dest/'benchmarks.md')
        nav.append({'Benchmarks': 'benchmarks.md'})
    cfg = dict(
        site_name='fastreid_vehicle', site_description='Vehicle re-identification for fastai',
        docs_dir=str(dest), repo_url='https://github.com/fastreid-vehicle/fastreid_vehicle', nav=nav,
        theme=dict(name='material', font=False, features=['navigation.sections', 'navigation.top', 'content.code.copy']),
        markdown_extensions=['admonition', 'tables', 'toc', 'pymdownx.highlight', 'pymdownx.superfences'],
        plugins=['search',
                 {'mkdocs-jupyter': dict(execute=False, include_source=True, ignore_h1_titles=False)},
                 {'mkdocstrings': dict(handlers=dict(python=dict(paths=[str(ROOT)], options=dict(
                     show_source=True, docstring_style=None, members_order='source', show_root_heading=False,
                     filters=['!^_'], show_signature_annotations=True))))}])
    path = dest.parent/'mkdocs.yml'
    path.write_text(json.dumps(cfg, indent=1))  # JSON is valid YAML
    return path

def build(out: Path = ROOT/'_docs'/'site', quiet: bool = True) -> Path:
    "Build the site into `out` and return the path of its `index.html`."
    cfg = stage(ROOT/'_docs'/'src')
    cmd = [sys.executable, '-m', 'mkdocs', 'build', '-f', str(cfg), '-d', str(out)] + (['-q'] if quiet else [])
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode: raise RuntimeError(f'mkdocs build failed:\n{res.stdout}\n{res.stderr}')
    return out/'index.html'

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--readme', action='store_true', help='only rewrite README.md from nbs/index.ipynb')
    p.add_argument('--out', default=str(ROOT/'_docs'/'site'), help='output folder of the site')
    a = p.parse_args()
    write_atomic(ROOT/'README.md', readme_text())
    if a.readme: return print('wrote README.md')
    print('site:', build(Path(a.out), quiet=False))

if __name__ == '__main__': main()
