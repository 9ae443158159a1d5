#!/usr/bin/env python
"""Build the documentation site offline, and the README, from the notebooks in `nbs/`.

    python docs/build_docs.py            # site into _docs/site (open _docs/site/index.html)
    python docs/build_docs.py --readme   # only rewrite README.md from nbs/index.ipynb

The site is MkDocs (Material theme). Every notebook (`nbs/*.ipynb`, `nbs/tutorials/*.ipynb`) becomes a Markdown page
written here from its saved outputs (nothing is re-executed), the way nbdev presents a notebook: `#| export` cells
show the signature, docstring and parameter table of each public name they define (not their source; `#| exports`
shows the source too), `#| hide` / `#| exporti` cells and test cells (assertions, `test_eq`...) are left out, outputs
keep their tables and figures, and temporary paths are shortened. Each module gets an API page generated from the
objects (entry points first, constructor signatures, the per-parameter `# comments` read by fastcore's `docments`);
names in backticks link to their API entries; the CLI reference comes from the argparse parser behind `--help` (with
examples that must parse, and the recipe list of its epilog); maths is typeset by MathJax, copied into the site from
the `jupyter-server-mathjax` package (no CDN). Internal notebooks (`DEVELOPMENT`) and BENCHMARKS.md as it stands go to
a Development section of the navigation; the user guide has hand-written pages from `docs/pages/`.

The site works opened from disk and served: pages are `page.html` (`use_directory_urls: false`), and Material's
offline plugin writes the search index as a script, searched from file:// through a local Web Worker shim
(`IFRAME_WORKER`). The build then fails (`check_site`, after writing the site) on what a reader would notice: missing
pages, links or images that do not open (missing, or a folder), raw TeX, object reprs as defaults, temporary or machine
paths, test code, private names and developer notes on user pages, private names or undocumented callback events on
API pages, and sentences announcing something that does not follow.
Quarto is not needed; nbdev's own configuration (`nbs/_quarto.yml`, `nbs/nbdev.yml`) is kept for `nbdev-docs`.
"""
import argparse, ast, html, importlib, importlib.util, inspect, json, os, re, shutil, subprocess, sys, tempfile, textwrap, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, PKG, PAGES = ROOT/'nbs', ROOT/'fastreid_vehicle', ROOT/'docs'/'pages'
SKIP_MODULES = {'__init__', '_modidx', 'all'}
TUTORIALS = 'tutorials'
MACHINE_PATHS = re.compile(r'(?<![\w.-])/(?:tmp|work|root|home|var/folders|private/var)/(?!\.\.\.)[^\s"\'<>)]*')

# ---------------------------------------------------------------- notebooks and pages

def page_name(nb: Path) -> str:
    "Page file name of a notebook: numeric prefix dropped, as nbdev does (`00_readers.ipynb` -> `readers.ipynb`)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb.name)

def page_path(nb: Path) -> str:
    "Site-relative Markdown path of a notebook's page (`nbs/tutorials/01_x.ipynb` -> `tutorials/x.md`)."
    rel = nb.relative_to(NBS).parent
    return str(rel/page_name(nb).removesuffix('.ipynb')) + '.md' if str(rel) != '.' else page_name(nb).removesuffix('.ipynb') + '.md'

def nb_title(nb: Path) -> str:
    "The first `# heading` of a notebook's markdown, else its page name."
    for c in json.loads(nb.read_text())['cells']:
        if c['cell_type'] != 'markdown': continue
        m = re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
        if m: t = m.group(1).strip().replace('`', ''); return t[:1].upper() + t[1:]
    return page_name(nb).removesuffix('.ipynb')

def _visible(p: Path) -> bool: return not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts)

def notebooks():
    "The guide notebooks (`nbs/*.ipynb`) then the tutorials (`nbs/tutorials/*.ipynb`)."
    return sorted(p for p in NBS.glob('*.ipynb') if _visible(p)) + tutorials()

def tutorials(): return sorted(p for p in (NBS/TUTORIALS).glob('*.ipynb') if _visible(p))

def modules(): return sorted(p.stem for p in PKG.glob('*.py') if p.stem not in SKIP_MODULES)

# ---------------------------------------------------------------- text outputs

_BAR = re.compile(r'█?(?:Epoch \d+/\d+ :)?\s*\|[█\-]*\|\s*[\d.]+% \[[^\]]*\]')

def clean_progress(text:str) -> str:
    "Drop the console progress bars fastprogress prints outside Jupyter, keeping the table it logs (and indentation)."
    lines = []
    for line in text.split('\n'):
        line = line.rstrip('\r').split('\r')[-1]   # what a terminal shows: the text after the last carriage return
        line = re.sub(r'^\s*Epoch \d+/\d+ :\s*$', '', _BAR.sub('', line).replace('█', ''))
        if line.strip(): lines.append(line.rstrip())
    return '\n'.join(lines) + '\n'

def short_paths(text:str) -> str:
    "Temporary folders (`/tmp/tmpab12cd/x/y.png`) shortened to the path inside them (`x/y.png`)."
    text = re.sub(r'(?:/private)?(?:/tmp|/var/folders/[^\s/]+/[^\s/]+/T)/(?:tmp|pytest-of-[^/\s]+/)[\w.-]*/?', '', text)
    return text

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

def text_table(text:str) -> str|None:
    "A whitespace-aligned table (fastai's console training table: `epoch train_loss ... time`) as a Markdown table."
    lines = [l.split() for l in text.strip().splitlines()]
    if len(lines) < 2 or lines[0][0] != 'epoch' or any(len(l) != len(lines[0]) for l in lines): return None
    if not all(re.fullmatch(r'\d+', l[0]) for l in lines[1:]): return None
    row = lambda l: '| ' + ' | '.join(l) + ' |'
    return '\n'.join([row(lines[0]), '|' + '---|'*len(lines[0])] + [row(l) for l in lines[1:]])

def _code_block(text:str, lang:str='') -> str: return f'```{lang}\n{text.rstrip()}\n```'

def stream_markdown(text:str) -> str:
    "Markdown of a cell's printed text: training tables as tables, the rest as a text block."
    parts, block = [], []
    def flush():
        if block: parts.append(_code_block('\n'.join(block), 'text')); block.clear()
    lines, i = text.splitlines(), 0
    while i < len(lines):
        if lines[i].split()[:1] == ['epoch']:
            j = i + 1
            while j < len(lines) and re.match(r'\d+\s', lines[j]): j += 1
            t = text_table('\n'.join(lines[i:j]))
            if t: flush(); parts.append(t); i = j; continue
        block.append(lines[i]); i += 1
    flush()
    return '\n\n'.join(parts)

# ---------------------------------------------------------------- API objects: signatures, docments, cross-links

def _fmt_anno(a) -> str:
    if a is inspect.Parameter.empty or a is None: return ''
    if isinstance(a, str): return a
    if isinstance(a, type): return a.__name__
    return re.sub(r'\btyping\.', '', repr(a))

_CONSTS = {}

def _fmt_default(d) -> str:
    "A default as the reader would write it: a package constant by its name, long values shortened."
    if d is inspect.Parameter.empty: return ''
    if inspect.isfunction(d) or inspect.isclass(d): return d.__name__
    if not _CONSTS:
        for m in modules():
            mod = importlib.import_module(f'fastreid_vehicle.{m}')
            for n in getattr(mod, '__all__', []):
                v = getattr(mod, n, None)
                if n.isupper() and isinstance(v, (str, dict, tuple, list)) and len(repr(v)) > 40: _CONSTS[id(v)] = n
    if id(d) in _CONSTS: return _CONSTS[id(d)]
    r = short_paths(readable(d))
    return r if len(r) <= 60 else r[:57] + '...'


def readable(v) -> str:
    """`repr` as the reader would type the value: an enum member as `AMPMode.FP16` (not `<AMPMode.FP16: 'fp16'>`),
    inside containers too; functions and classes by name."""
    import enum
    if isinstance(v, enum.Enum): return f'{type(v).__name__}.{v.name}'
    if inspect.isfunction(v) or inspect.isclass(v) or inspect.isbuiltin(v): return v.__name__
    if type(v) in (list, tuple, set):
        inner = ', '.join(readable(x) for x in v)
        return f'[{inner}]' if isinstance(v, list) else f'{{{inner}}}' if isinstance(v, set) else f'({inner}{"," if len(v) == 1 else ""})'
    if type(v) is dict: return '{' + ', '.join(f'{readable(k)}: {readable(x)}' for k, x in v.items()) + '}'
    return repr(v)

def _signature(obj):
    try: sig = inspect.signature(obj)
    except (TypeError, ValueError): return None
    ps = list(sig.parameters.values())
    if ps and ps[0].name in ('self', 'cls') and not inspect.isclass(obj): sig = sig.replace(parameters=ps[1:])
    return sig

def signature_text(name:str, obj) -> str:
    "`name(args)` wrapped at 100 columns, one parameter per line when it does not fit."
    sig = _signature(obj)
    if sig is None: return name
    parts, star = [], False
    for p in sig.parameters.values():
        if p.kind == p.KEYWORD_ONLY and not star: parts.append('*'); star = True
        if p.kind == p.VAR_POSITIONAL: star = True
        s = ('*' if p.kind == p.VAR_POSITIONAL else '**' if p.kind == p.VAR_KEYWORD else '') + p.name
        if p.annotation is not p.empty: s += ':' + _fmt_anno(p.annotation)
        if p.default is not p.empty: s += '=' + _fmt_default(p.default)
        parts.append(s)
    ret = '' if sig.return_annotation is sig.empty or inspect.isclass(obj) else ' -> ' + _fmt_anno(sig.return_annotation)
    one = f"{name}({', '.join(parts)}){ret}"
    return one if len(one) <= 100 else f"{name}(\n" + ''.join(f'    {p},\n' for p in parts) + f"){ret}"

def _docments(obj) -> dict:
    "Per-parameter notes: the `# comments` read by `docments`; a dataclass's fields fall back to `metadata['help']`."
    import dataclasses
    from fastcore.docments import docments
    is_dc = inspect.isclass(obj) and dataclasses.is_dataclass(obj)
    try: d = docments(obj if is_dc else obj.__init__ if inspect.isclass(obj) and '__init__' in vars(obj) else obj, full=True)
    except Exception: d = {}
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items() if k not in ('self', 'cls')}
    if is_dc:
        for f in dataclasses.fields(obj):
            help_ = (f.metadata or {}).get('help')
            if help_ and not (d.get(f.name) or {}).get('docment'): d[f.name] = {**(d.get(f.name) or {}), 'docment': help_}
    return d

def code_cell(s:str) -> str:
    "Code in a Markdown table cell: HTML, since a `\\|` inside backticks would show its backslash (`int \\| None`)."
    return f"<code>{html.escape(s).replace('|', '&#124;')}</code>" if s else ''

def param_table(obj, links) -> str:
    "The fastai-docs parameter table: name, type, default, the parameter's `# comment`."
    d, sig = _docments(obj), _signature(obj)
    if sig is None or not any((v or {}).get('docment') for v in d.values()): return ''
    rows = []
    for n, p in sig.parameters.items():
        doc = (d.get(n) or {}).get('docment') or ''
        pre = '\\*' if p.kind == p.VAR_POSITIONAL else '\\*\\*' if p.kind == p.VAR_KEYWORD else ''
        anno, dflt = _fmt_anno(p.annotation), _fmt_default(p.default)
        cell = code_cell
        rows.append(f"| {pre}`{n}` | {cell(anno)} | {cell(dflt)} | {links(doc).replace('|', '&#124;')} |")
    r = d.get('return') or {}
    if r.get('docment'): rows.append(f"| **Returns** | {'`'+_fmt_anno(r.get('anno'))+'`' if _fmt_anno(r.get('anno')) else ''} | | {links(r['docment'])} |")
    if not rows: return ''
    return '| Parameter | Type | Default | Details |\n|---|---|---|---|\n' + '\n'.join(rows)

def anchor(qual:str) -> str: return 'fastreid_vehicle.' + qual

def _doc(obj) -> str:
    d = inspect.getdoc(obj) or ''
    return d

def doc_entry(name:str, obj, module:str, links, level:int=3, ident:bool=True) -> str:
    "One documented name: heading (with an anchor on API pages), signature, docstring, parameter table."
    kind = 'class' if inspect.isclass(obj) else 'method' if '.' in name else 'function'
    hid = f' {{#{anchor(module + "." + name)}}}' if ident else ''
    out = [f"{'#'*level} `{name}` <small>{kind}</small>{hid}"]
    if callable(obj):
        out.append(_code_block(signature_text(name, obj), 'python'))
    doc = _doc(obj)
    if doc: out.append(links(doc))
    t = param_table(obj, links) if callable(obj) else ''
    if t: out.append(t)
    return '\n\n'.join(out)

def patched(module) -> dict:
    "`Class.method` -> function of the `@patch`ed methods a module adds to other classes (e.g. fastai's `Learner`)."
    src = Path(module.__file__).read_text()
    out = {}
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith('_') \
                and any(getattr(d, 'id', None) == 'patch' for d in node.decorator_list):
            a = node.args.args[0].annotation if node.args.args else None
            cls = getattr(module, getattr(a, 'id', ''), None)
            if cls is not None and hasattr(cls, node.name): out[f'{cls.__name__}.{node.name}'] = getattr(cls, node.name)
    return out

def _callback_events() -> set:
    "fastai's callback event names (`before_fit`, `after_batch`...): how a callback works, not how it is used."
    from fastai.callback.core import _events
    return set(_events)

def public_methods(cls) -> dict:
    """Public methods and properties a class defines itself (not inherited): constructors (class methods) first, then
    the others in source order; `forward`, undocumented fastai callback events and undocumented properties left out."""
    ctors, rest = {}, {}
    for k, v in vars(cls).items():
        if k.startswith('_') or k == 'forward': continue
        if k in _callback_events() and not (getattr(v, '__doc__', None) or '').strip(): continue   # an event shows when documented
        if isinstance(v, (classmethod, staticmethod)): (ctors if isinstance(v, classmethod) else rest)[k] = getattr(cls, k)
        elif inspect.isfunction(v) or (isinstance(v, property) and v.__doc__): rest[k] = v
    return {**ctors, **rest}

class Names:
    "Where each public name of the package is documented: `name -> (module, qualified name)`, and linking of backticks."
    def __init__(self):
        self.where = {}
        for m in modules():
            mod = importlib.import_module(f'fastreid_vehicle.{m}')
            for n in getattr(mod, '__all__', []):
                self.where.setdefault(n, (m, n))
                obj = getattr(mod, n, None)
                if inspect.isclass(obj) and obj.__module__ == mod.__name__:
                    for k in public_methods(obj): self.where.setdefault(f'{n}.{k}', (m, f'{n}.{k}'))
            for q in patched(mod): self.where.setdefault(q, (m, q))
            self.where.setdefault(f'fastreid_vehicle.{m}', (m, None))

    def url(self, name:str, page:str) -> str|None:
        w = self.where.get(name)
        if w is None: return None
        rel = os.path.relpath(f'api/{w[0]}.md', os.path.dirname(page) or '.')
        return rel + (f'#{anchor(w[0] + "." + w[1])}' if w[1] else '')

    def linker(self, page:str):
        "A function that links `` `Name` ``, `` `Name(...)` `` and `` `Name.attr` `` in Markdown prose to the API entries."
        code = re.compile(r'(?<![`\[\w])`([A-Za-z_][\w.]*)(\([^`]*\))?`(?![`\]])')
        def sub(m):
            name = m.group(1)
            if name.startswith('fastreid_vehicle.') and name.count('.') > 1 and name not in self.where: name = name.split('.', 2)[2]
            cands = [name, name.split('.')[0]] if '.' in name else [name]
            for c in cands:
                u = self.url(c, page)
                if u: return f'[{m.group(0)}]({u})'
            return m.group(0)
        def links(md:str) -> str:
            out, fence = [], False
            for line in md.split('\n'):
                if line.lstrip().startswith(('```', '~~~')): fence = not fence; out.append(line); continue
                if fence or line.lstrip().startswith('#'): out.append(line); continue
                pieces = re.split(r'(\$\$?[^$]+\$\$?)', line)   # leave maths alone
                out.append(''.join(p if p.startswith('$') else code.sub(sub, p) for p in pieces))
            return '\n'.join(out)
        return links

# ---------------------------------------------------------------- notebook -> Markdown

TEST_CALLS = re.compile(r'^(test_\w*|assert_\w*|_test_\w*|test)$')

def _is_test(node) -> bool:
    "A statement that only checks: `assert`, a `test_eq(...)`-style call, or a block whose body is only checks."
    if isinstance(node, ast.Assert): return True
    if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('fastcore.test'): return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        f = node.value.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''
        return bool(TEST_CALLS.match(name))
    if isinstance(node, (ast.For, ast.With, ast.If, ast.While)):
        body = node.body + getattr(node, 'orelse', [])
        return bool(body) and all(_is_test(n) for n in body)
    return False

def checks_anywhere(src:str) -> bool:
    "Whether the code calls a check (`test_eq`, `assert`...) anywhere, also inside loops, functions and `with` blocks."
    try: tree = ast.parse(src)
    except SyntaxError: return False
    for n in ast.walk(tree):
        if isinstance(n, ast.Assert): return True
        if isinstance(n, ast.Call):
            f = n.func
            if TEST_CALLS.match(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ''): return True
    return False

def strip_tests(src:str) -> tuple[str, bool]:
    "Source without its check statements (and the comments just above them); whether it had any."
    try: tree = ast.parse(src)
    except SyntaxError: return src, False
    drop = set()
    for node in tree.body:
        if _is_test(node): drop.update(range(node.lineno - 1, node.end_lineno))
    if not drop: return src, False
    lines = src.split('\n')
    for i in sorted(drop):   # a comment line right above a dropped statement goes with it
        j = i - 1
        while j >= 0 and j not in drop and lines[j].strip().startswith('#'): drop.add(j); j -= 1
    kept = [l for i, l in enumerate(lines) if i not in drop]
    # statements sharing a line with a check (`a = f(); test_eq(a, 1)`) keep their line minus the check
    return '\n'.join(kept).strip('\n'), True

def toc_labels(md:str) -> str:
    "Headings with maths get a plain-text label for the table of contents (`$L^g_{tri}$` -> `L^g_tri`)."
    def label(m):
        plain = re.sub(r'\$([^$]+)\$', lambda k: re.sub(r'\\(?:mathrm|text|mathbf)\b|[{}\\]', '', k.group(1)), m.group(2))
        return f'{m.group(1)}{m.group(2)} {{data-toc-label="{html.escape(plain.replace("`", ""))}"}}'
    return re.sub(r'^(#{1,6}\s+)(.*\$[^$\n]+\$.*)$', label, md, flags=re.M)

def _directives(src:str) -> dict:
    out = {}
    for m in re.finditer(r'^#\|\s*([\w-]+)\s*:?\s*(.*)$', src, re.M): out[m.group(1)] = m.group(2).strip()
    return out

def _defined_names(src:str, module) -> list:
    "Public names an exported cell defines, as `(display name, object)`: functions, classes, `@patch`ed methods."
    try: tree = ast.parse(src)
    except SyntaxError: return []
    out = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) or node.name.startswith('_'): continue
        if any(getattr(d, 'id', None) == 'patch' for d in getattr(node, 'decorator_list', [])):
            a = node.args.args[0].annotation if node.args.args else None
            cls = getattr(module, getattr(a, 'id', ''), None) if module else None
            if cls is not None and hasattr(cls, node.name): out.append((f'{cls.__name__}.{node.name}', getattr(cls, node.name)))
            continue
        obj = getattr(module, node.name, None) if module else None
        if obj is not None and node.name in getattr(module, '__all__', [node.name]): out.append((node.name, obj))
    return out

def _reexports_only(src:str) -> bool:
    "An exported cell that only re-exports the package's modules (`from fastreid_vehicle.x import *`): worth showing."
    try: tree = ast.parse(src)
    except SyntaxError: return False
    stars = [n for n in tree.body if isinstance(n, ast.ImportFrom) and (n.module or '').startswith('fastreid_vehicle.')
             and [a.name for a in n.names] == ['*']]
    return bool(stars) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)

def _show_doc_target(src:str, ns:dict):
    m = re.fullmatch(r'\s*show_doc\(\s*([\w.]+)\s*(?:,[^)]*)?\)\s*', src)
    if not m: return None
    parts = m.group(1).split('.')
    obj = ns.get(parts[0])
    for p in parts[1:]: obj = getattr(obj, p, None)
    return (m.group(1), obj) if obj is not None else None

class Figures:
    "Writes a page's output images next to it (`<page>_files/figN.png`) and returns their Markdown."
    def __init__(self, dest:Path, page:str): self.dest, self.page, self.n = dest, page, 0
    def add(self, b64:str, ext:str) -> str:
        import base64
        self.n += 1
        rel = f"{Path(self.page).stem}_files/fig{self.n}.{ext}"
        p = self.dest/Path(self.page).parent/rel
        p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(base64.b64decode(''.join(b64)))
        return f'![figure {self.n}]({Path(rel).as_posix()})'

def output_markdown(o:dict, figs:Figures) -> str:
    t = o.get('output_type')
    if t == 'stream':
        if o.get('name') != 'stdout': return ''   # warnings and logs on stderr are not for the reader
        txt = short_paths(clean_progress(''.join(o.get('text', ''))))
        return stream_markdown(txt) if txt.strip() else ''
    if t == 'error': raise RuntimeError(f"a saved output is an error ({o.get('ename')}): re-run the notebook")
    data = o.get('data', {})
    for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg')):
        if mime in data: return figs.add(data[mime], ext)
    if 'image/svg+xml' in data: return '<div class="nb-output">' + ''.join(data['image/svg+xml']) + '</div>'
    if 'text/markdown' in data: return short_paths(''.join(data['text/markdown']))
    if 'text/html' in data:
        h = short_paths(''.join(data['text/html']))
        h = re.sub(r'<style[^>]*>.*?</style>', '', h, flags=re.S)
        return '<div class="nb-output" markdown="0">\n' + '\n'.join(l for l in h.splitlines() if l.strip()) + '\n</div>'
    txt = ''.join(data.get('text/plain', ''))
    if re.fullmatch(r'<(Figure|Axes|matplotlib)[^>]*>', txt.strip()): return ''
    return _code_block(short_paths(txt), 'text') if txt.strip() else ''

class _Uncounted(Figures):
    "Figures that are only counted (to know whether a cell shows an output), not written."
    def __init__(self): self.n = 0
    def add(self, b64:str, ext:str) -> str: self.n += 1; return f'![figure {self.n}]()'

def shown_outputs(c:dict, figs:Figures|None=None) -> list:
    "The Markdown of the outputs of code cell `c` a reader sees (stdout, tables, figures; not stderr or object reprs)."
    if _directives(''.join(c['source'])).get('output') == 'false': return []
    figs = figs or _Uncounted()
    return [m for m in (output_markdown(o, figs) for o in c.get('outputs', [])) if m]

SHOW_DOC = re.compile(r'\s*show_doc\(\s*[\w.]+\s*(?:,[^)]*)?\)\s*')

def code_body(src:str) -> str: return '\n'.join(l for l in src.split('\n') if not l.startswith('#|')).strip('\n')

def cell_role(c:dict) -> str:
    """What a notebook cell is on its page: 'markdown'; 'module' (`default_exp`); 'hidden' (`hide`, `exporti`,
    `include: false`); 'export' (documented by signature; a reader imports it); 'show_doc'; 'checks' (only checks and no
    shown output: it runs in the tests, not on the page); 'output' (`echo: false`: its output without its code);
    'example' (shown, and run by a reader, minus its check statements)."""
    if c['cell_type'] != 'code': return c['cell_type']
    src = ''.join(c['source']); d = _directives(src)
    if 'default_exp' in d: return 'module'
    if 'hide' in d or 'exporti' in d or d.get('include') == 'false': return 'hidden'
    if 'export' in d or 'exports' in d: return 'export'
    body = code_body(src)
    if SHOW_DOC.fullmatch(body): return 'show_doc'
    shown, had_tests = strip_tests(body)
    if (had_tests or checks_anywhere(body)) and not shown_outputs(c): return 'checks'
    if d.get('echo') == 'false' or not shown.strip(): return 'output'
    return 'example'

PRELUDE = 'from fastreid_vehicle.all import *'

def in_star_import(module:str) -> bool:
    "Whether `from fastreid_vehicle.all import *` brings every public name of `fastreid_vehicle.<module>`."
    all_ = set(vars(importlib.import_module('fastreid_vehicle.all')))
    return set(getattr(importlib.import_module(f'fastreid_vehicle.{module}'), '__all__', [])) <= all_

def page_prelude(module:str|None) -> str:
    """The imports a page's examples start from: the package's star import, and the page's module where the star import
    does not bring all of it. Shown at the top of every page with examples, and run first by `run_examples`."""
    return PRELUDE if not module or in_star_import(module) else f'{PRELUDE}\nfrom fastreid_vehicle.{module} import *'

def nb_module(nb:dict) -> str|None:
    "The module a notebook exports to (`#| default_exp`), if any."
    for c in nb['cells']:
        if c['cell_type'] == 'code' and 'default_exp' in (d := _directives(''.join(c['source']))): return d['default_exp']
    return None

def nb_markdown(nb_path:Path, dest:Path, page:str, links) -> str:
    "The Markdown page of a notebook (see the module docstring for what is shown)."
    nb = json.loads(nb_path.read_text())
    figs, module, parts, level = Figures(dest, page), None, [], 2
    ns, roles = {}, [cell_role(c) for c in nb['cells']]
    prelude = 'example' in roles and page_prelude(nb_module(nb))
    for c, role in zip(nb['cells'], roles):
        src = ''.join(c['source'])
        if role == 'markdown':
            for h in re.findall(r'^(#+)\s', src, re.M): level = len(h)
            parts.append(links(toc_labels(src)))
            if prelude and level == 1:   # after the title and its introduction
                parts.append(f'Examples on this page start from\n\n{_code_block(prelude, "python")}'); prelude = None
            continue
        if role == 'module':
            module = importlib.import_module(f"fastreid_vehicle.{_directives(src)['default_exp']}"); ns = vars(module); continue
        if role in ('hidden', 'checks', 'raw'): continue
        body = code_body(src)
        if role == 'export':
            if 'exports' in _directives(src) or _reexports_only(body): parts.append(_code_block(body, 'python'))
            for name, obj in _defined_names(body, module):
                parts.append(doc_entry(name, obj, '', links, level=min(max(level + 1, 3), 4), ident=False))
                if inspect.isclass(obj):   # its documented methods, one level down (as `show_doc(Class.method)`)
                    for k, v in public_methods(obj).items():
                        if isinstance(v, property) or not getattr(v, '__doc__', None): continue
                        parts.append(doc_entry(f'{name}.{k}', v, '', links, level=min(max(level + 2, 4), 5), ident=False))
            continue
        sd = role == 'show_doc' and _show_doc_target(body, ns)
        if sd:
            parts.append(doc_entry(sd[0], sd[1], module.__name__.split('.')[-1] if module else '', links,
                                   level=min(max(level + 1, 3), 4), ident=False)); continue
        if role == 'example': parts.append(_code_block(strip_tests(body)[0], 'python'))
        parts.extend(shown_outputs(c, figs))
    return '\n\n'.join(p for p in parts if p.strip()) + '\n'

# ---------------------------------------------------------------- running a page's examples

class RunApart:
    """Runs code its page does not show (hidden cells, check cells and statements) in a namespace of its own: the
    page's names, over what earlier unshown code defined, over the module's own (private names too) and fastcore's test
    helpers. What it defines stays there, so a shown cell can never use it; what it adds to `sys.path` is taken back."""
    def __init__(self, module, page:dict):
        import fastcore.test
        self.page = page
        self.hidden = {**(vars(module) if module else {}), **{k: getattr(fastcore.test, k) for k in fastcore.test.__all__}}
    def __call__(self, code:str, label:str):
        ns, path = {**self.hidden, **self.page}, list(sys.path)
        try: exec(compile(code, label, 'exec'), ns)
        finally: sys.path[:] = path   # a folder it adds to the import path (the tests' helpers) is not the page's
        self.hidden.update({k: v for k, v in ns.items() if self.page.get(k, self) is not v})

def checks_apart(src:str, label:str) -> str:
    "Code `src` with each top-level check statement (see `strip_tests`) replaced by a `_run_apart` call running it."
    tree = ast.parse(src)
    if not any(_is_test(n) for n in tree.body): return src
    tree.body = [ast.Expr(ast.Call(ast.Name('_run_apart', ast.Load()), [ast.Constant(ast.get_source_segment(src, n)),
                                   ast.Constant(f'{label}, line {n.lineno}')], [])) if _is_test(n) else n for n in tree.body]
    return ast.unparse(ast.fix_missing_locations(tree))

def run_examples(nb_path:Path, skip_flags=None) -> None:
    """Run notebook `nb_path` as its page shows it, in a fresh IPython shell: its prelude (`page_prelude`), then each
    example cell as shown, in order. What the page does not show (hidden cells, check cells, the check statements of
    examples) still runs, in place, but apart (`RunApart`): a shown cell that needs a hidden definition fails here.
    Exported cells are not run: the prelude imports them. Cells flagged `skip_flags` (default: settings.ini's
    `tst_flags`) or `eval: false` are skipped. Raises `RuntimeError` naming the cell on the first failure."""
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory, modified_env
    nb_path = Path(nb_path).resolve()
    nb = json.loads(nb_path.read_text())
    if skip_flags is None:   # what `nbdev-test` skips by default (settings.ini's `tst_flags`)
        from nbdev.config import get_config
        skip_flags = get_config(ROOT).tst_flags.split()
    skip = set(skip_flags)
    module = nb_module(nb)
    k = CaptureShell(nb_path)
    def run(code, what):
        k.run(code)
        if k.exc is not None:
            raise RuntimeError(f"{nb_path.name}, {what}:\n{textwrap.indent(code, '    ')}\n\n{''.join(traceback.format_exception(k.exc))}")
    with working_directory(nb_path.parent), modified_env(IN_TEST='1'):   # as nbdev-test runs notebooks
        run(page_prelude(module), 'the prelude')
        k.user_ns['_run_apart'] = RunApart(importlib.import_module(f'fastreid_vehicle.{module}') if module else None, k.user_ns)
        for i, c in enumerate(nb['cells']):
            role = cell_role(c)
            if role in ('markdown', 'raw', 'module', 'export', 'show_doc'): continue
            src = ''.join(c['source']); d = _directives(src)
            if d.get('eval') == 'false' or skip & set(d) or 'exporti' in d: continue   # exporti: the module has it
            code = k.transform_cell(code_body(src))
            if role == 'example': run(checks_apart(code, f'<cell {i}>'), f'shown cell {i}')
            else: run(f"_run_apart({code!r}, '<cell {i} ({role})>')", f'cell {i} ({role}, run apart)')

# ---------------------------------------------------------------- API pages

def usage_counts() -> dict:
    """How often each name is called in the examples a reader runs: the home page and tutorials count most, then the guide
    pages' example cells (not their exported code or test cells). Entry points rank first on the API pages."""
    counts = {}
    for nb in notebooks():
        weight = 10 if nb.name == 'index.ipynb' or nb.parent.name == TUTORIALS else 1
        for c in json.loads(nb.read_text())['cells']:
            s = ''.join(c['source'])
            if c['cell_type'] != 'code' or re.search(r'^#\|\s*(export|exports|exporti|hide)\b', s, re.M): continue
            if strip_tests(s)[1] and not c.get('outputs'): continue
            for n in re.findall(r'\b([A-Za-z_]\w*)\s*(?:\(|\.from_)', s): counts[n] = counts.get(n, 0) + weight
    return counts

def api_page(m:str, names:Names, counts:dict) -> str:
    mod = importlib.import_module(f'fastreid_vehicle.{m}')
    page = f'api/{m}.md'
    links = names.linker(page)
    allnames = list(getattr(mod, '__all__', []))
    objs = {n: getattr(mod, n) for n in allnames if hasattr(mod, n)}
    callables = [n for n, o in objs.items() if callable(o) and not (inspect.isclass(o) and issubclass(o, dict) and not o.__init__.__module__.startswith('fastreid'))]
    consts = [n for n in objs if n not in callables]
    entry = sorted([n for n in callables if counts.get(n)], key=lambda n: (-counts[n], allnames.index(n)))
    rest = [n for n in callables if n not in entry]
    doc = (mod.__doc__ or '').strip()
    out = [f'# `fastreid_vehicle.{m}`', links(doc) if doc else '',
           f'Import with `from fastreid_vehicle.{m} import *`' + (' (or `from fastreid_vehicle.all import *`). ' if in_star_import(m) else '. ') +
           f'The guide page [{m}](../{guide_page_of(m)}) explains it with examples.' if guide_page_of(m) else '']
    pt = patched(mod)
    def entries(ns):
        res = []
        for n in ns:
            o = objs[n]
            res.append(doc_entry(n, o, m, links, level=3))
            if inspect.isclass(o) and o.__module__ == mod.__name__:
                for k, v in public_methods(o).items():
                    if isinstance(v, property):
                        res.append(f"#### `{n}.{k}` <small>property</small> {{#{anchor(m + '.' + n + '.' + k)}}}\n\n{links(inspect.getdoc(v) or '')}")
                    else: res.append(doc_entry(f'{n}.{k}', v, m, links, level=4))
        return res
    if entry: out += ['## Entry points'] + entries(entry)
    if rest: out += ['## Building blocks' if entry else '## Names'] + entries(rest)
    if pt:
        out += ['## Methods added to other classes']
        out += [doc_entry(q, f, m, links, level=3) for q, f in pt.items()]
    if consts:
        rows = []
        for n in consts:
            r = short_paths(readable(objs[n]))
            r = r if len(r) <= 80 else r[:77] + '...'
            rows.append(f"| `{n}` {{#{anchor(m + '.' + n)}}} | {code_cell(r)} |")
        out += ['## Constants', '| Name | Value |\n|---|---|\n' + '\n'.join(rows).replace(' {#', ' <a id="').replace('} |', '"></a> |')]
    return '\n\n'.join(p for p in out if p) + '\n'

_GUIDE = {}
def guide_page_of(m:str) -> str|None:
    "The guide page (`readers.md`) of the notebook that exports module `m`."
    if not _GUIDE:
        for nb in notebooks():
            for c in json.loads(nb.read_text())['cells']:
                mm = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
                if mm: _GUIDE[mm.group(1)] = page_path(nb); break
    return _GUIDE.get(m)

# ---------------------------------------------------------------- CLI reference, BENCHMARKS

CLI_EXAMPLES = {   # checked at build time: each must parse with the command's own parser
    'train': [('fastreid-vehicle train --dataset veri776 --root data/VeRi --recipe mfgnet-veri776 --out runs/mfgnet',
               "MFG-Net with the paper's VeRi-776 recipe; the run folder gets the model, metrics.json and figures"),
              ('fastreid-vehicle train --dataset veri776 --root data/VeRi --recipe anet-veri776 --weights weights/resnet50_ibn_a-d9d0bb7b.pth',
               'AttributeNet on the IBN-a ResNet-50 from a local ImageNet weights file'),
              ('fastreid-vehicle train --dataset custom --root my_cameras --method bot --epochs 20 --size 256,256',
               'the Bag-of-Tricks baseline on your own cameras (see the first tutorial)'),
              ('fastreid-vehicle train --recipe mfgnet-veri776 --root data/VeRi --set n_stripes=6 --epochs 40 --out runs/mfgnet6',
               "a recipe with one of the method's settings and the schedule changed (flags beside --recipe override it)"),
              ('fastreid-vehicle train --dataset veri776 --root data/VeRi --recipe mfgnet-veri776 --out runs/mfgnet --resume',
               'continue that first run, interrupted, from its last complete epoch (the same command with --resume)')],
    'demo': [('fastreid-vehicle demo', "the main job on the synthetic 'small' benchmark (about five minutes on a 2-core CPU)"),
             ('fastreid-vehicle demo --out runs/demo --no-progress', 'the same, written to runs/demo, with plain-text logs')],
    'eval': [('fastreid-vehicle eval runs/mfgnet --dataset veri776 --root data/VeRi',
              "a saved run on VeRi-776's standard protocol: metrics.json and figures in runs/eval"),
             ('fastreid-vehicle eval runs/anet --dataset veriwild --root data/VERI-Wild --rerank --out runs/anet-rerank',
              'the three VeRi-Wild test sizes, with k-reciprocal re-ranking')],
    'search': [('fastreid-vehicle search runs/mfgnet query1.jpg query2.jpg --gallery gallery/ -k 10 --out matches.png',
                'the 10 closest gallery images of each query, and a figure of them'),
               ('fastreid-vehicle search runs/mfgnet query.jpg --gallery gallery.csv --index gallery_index',
                'build the gallery index once and save it...'),
               ('fastreid-vehicle search runs/mfgnet query.jpg --index gallery_index', '...then search it without re-computing features')],
    'synth': [('fastreid-vehicle synth data/synthetic_small', "write the synthetic 'small' benchmark in VeRi-776's format"),
              ('fastreid-vehicle synth data/synthetic_tiny --preset tiny --seed 1', 'a smaller one, with another seed')],
}

def _cli_default(a, field=None) -> str:
    "An option's default as it would be typed (`64,64`, `on` / `off`), or '' where the help text states it."
    from fastreid_vehicle.config import default_of
    hlp = field.metadata['help'] if field is not None else (a.help or '')
    if re.search(r'\(default:', hlp) or 'default:' in hlp: return ''
    v = default_of(field) if field is not None else a.default
    if v is None: return 'none'
    if v is argparse.SUPPRESS or v == () or v == '': return ''
    if isinstance(v, bool): return 'on' if v else 'off'
    if isinstance(v, (tuple, list)): return ','.join(map(str, v))
    return short_paths(str(v.value) if hasattr(v, 'value') and not isinstance(v, (int, float, str)) else str(v))

def check_cli_examples(parser) -> list:
    "Each example of `CLI_EXAMPLES` parses with the command-line parser (they cannot go stale silently)."
    import contextlib, io, shlex
    bad = []
    for cmd, exs in CLI_EXAMPLES.items():
        for ex, _ in exs:
            try:
                with contextlib.redirect_stderr(io.StringIO()) as err: a = parser.parse_args(shlex.split(ex)[1:])
                if a.cmd != cmd: bad.append(f'CLI example under {cmd} runs {a.cmd}: {ex}')
            except SystemExit: bad.append(f'CLI example does not parse: {ex} ({err.getvalue().strip().splitlines()[-1:]})')
    return bad

def cli_page(links) -> str:
    """The command-line reference, generated from the parser `fastreid-vehicle --help` prints
    (`fastreid_vehicle.cli._parser()`): each option's meaning, default and choices (a setting's from
    `fastreid_vehicle.config`), grouped as `--help` groups them, examples per command, and the recipe list of the epilog."""
    from fastreid_vehicle.cli import _parser
    from fastreid_vehicle.config import config_fields
    from fastreid_vehicle.recipes import RECIPES
    p, cf = _parser(), config_fields()
    bad = check_cli_examples(p)
    if bad: raise SiteProblems('\n'.join(bad))
    out = ['# Command-line reference',
           'Generated from the parser behind `fastreid-vehicle --help`: the same options, meanings and defaults. '
           'Every setting of `train` is also a keyword of the Python function `train` and a field of '
           '`fastreid_vehicle.config`; `python -m fastreid_vehicle.cli` runs the same commands.',
           _code_block(p.format_usage().strip(), 'text'), p.description or '']
    top = [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]
    out.append('Options before the command: ' + '; '.join(f"`{', '.join(a.option_strings)}`: {a.help or 'print the version and exit'}" for a in top) + '.')
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    helps = {ca.dest: ca.help for ca in sub._choices_actions}
    out.append('| Command | What it does |\n|---|---|\n' + '\n'.join(
        f'| [`{n}`](#fastreid-vehicle-{n}) | {helps.get(n) or ""} |' for n in sub.choices))
    def row(a):
        flags = ', '.join(f'`{s}`' for s in a.option_strings) or f'`{a.dest}`' + (' (one or more)' if a.nargs == '+' else '')
        hlp, choices, dflt = a.help or '', ', '.join(f'`{c}`' for c in a.choices or () if c is not None), _cli_default(a)
        if a.dest in cf and a.option_strings:   # a setting of `fastreid_vehicle.config`: its own help, default and choices
            f = cf[a.dest][1]
            hlp, dflt = f.metadata['help'], _cli_default(a, f)
            choices = ', '.join(f'`{c}`' for c in f.metadata.get('choices') or () if c is not None)
        if isinstance(a, argparse._StoreTrueAction): dflt = 'off'
        hlp = hlp.replace('%(default)s', str(a.default)).replace('|', '&#124;').replace('\n', ' ')
        return f'| {flags} | {dflt} | {choices} | {links(hlp)} |'
    for name, q in sub.choices.items():
        out += [f'## `fastreid-vehicle {name}` {{#fastreid-vehicle-{name}}}', helps.get(name) or '',
                _code_block(q.format_usage().strip(), 'text'), '**Examples**']
        out.append('\n'.join(f'- {why}:\n\n    ```bash\n    {ex}\n    ```\n' for ex, why in CLI_EXAMPLES.get(name, [])))
        for g in q._action_groups:
            acts = [a for a in g._group_actions if not isinstance(a, argparse._HelpAction)]
            if not acts: continue
            title = {'positional arguments': 'Arguments', 'options': 'Options'}.get(g.title, g.title[:1].upper() + g.title[1:])
            out += [f'**{title}**' + (f': {g.description}' if g.description else ''),
                    '| Option | Default | Choices | Meaning |\n|---|---|---|---|\n' + '\n'.join(map(row, acts))]
        if q.epilog:
            out += ['**Recipes** (as `--help` lists them)', _code_block(q.epilog, 'text'),
                    '| Recipe | Paper | Dataset | Backbone | Image size | Batch (P x K) | Epochs |\n|---|---|---|---|---|---|---|\n' +
                    '\n'.join(f"| `{n}` | {r.paper.rsplit('(', 1)[-1].rstrip(')')} | {r.dataset} | `{r.args['backbone']}` | "
                              f"{'x'.join(map(str, r.args['size']))} | {r.args['P']} x {r.args['K']} | "
                              f"{r.args['epochs']}{' + ' + str(r.args['stage2_epochs']) if r.args.get('stage2_epochs') else ''} |"
                              for n, r in RECIPES.items()),
                    'Every value of a recipe, with the section of the paper it comes from, is on the '
                    '[recipes page](recipes.md); the time and memory they need and the papers\' results are in '
                    '[What to expect](expect.md).']
    return '\n\n'.join(o for o in out if o) + '\n'

def benchmarks_page(text:str) -> str:
    "BENCHMARKS.md for readers: internal notes (HTML comments, which helper / issue measured it) out, no accidental quotes."
    text = re.sub(r'<!--.*?-->', '', text, flags=re.S)
    text = re.sub(r'(?:the )?(?:sections of issues? \d+(?:(?:,| and) \d+)*|issue-\d+ sections)\s+\(([^()]*)\)',
                  r'the sections on \1', text)   # "the sections of issues 3 and 4 (speed, search)" -> "the sections on speed, search"
    text = re.sub(r'\s*\((?:[^()]*?\b(?:helper|issues?\s+\d+)\b[^()]*?)\)', '', text)
    text = re.sub(r'\s+for issues? \d+(?=[:.,;])', '', text)
    text = re.sub(r'^(\s*)>(?=\s*=?\s*[\d.])', r'\1\\>', text, flags=re.M)   # a wrapped `>= 20x` is not a quote
    text = re.sub(r'(?<![\w.-])/tmp/', '', text)   # scratch folders of the recorded commands, as relative paths
    return text

# ---------------------------------------------------------------- MathJax

MATHJAX_PARTS = ['MathJax.js', 'config', 'extensions', 'jax', 'fonts', 'localization/en', 'LICENSE']
MATHJAX_URL = 'assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full'

def mathjax_static() -> Path:
    "The MathJax 2 files of the `jupyter-server-mathjax` package (a dev requirement)."
    try: import jupyter_server_mathjax
    except ImportError as e:
        raise RuntimeError('the docs need MathJax from the `jupyter-server-mathjax` package: pip install -e ".[dev]"') from e
    return Path(jupyter_server_mathjax.__file__).parent/'static'

def copy_mathjax(dest:Path):
    src = mathjax_static()
    for part in MATHJAX_PARTS:
        s, d = src/part, dest/part
        if s.is_dir(): shutil.copytree(s, d, dirs_exist_ok=True, ignore=shutil.ignore_patterns('a11y'))
        elif s.exists(): d.parent.mkdir(parents=True, exist_ok=True); shutil.copy(s, d)

MATHJAX_CONFIG = """window.MathJax = {
  showMathMenu: false, messageStyle: "none", menuSettings: {zoom: "None"},
  tex2jax: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: false,
            processClass: "arithmatex", ignoreClass: ".*"},
  TeX: {extensions: ["noErrors.js", "noUndefined.js"]},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null, linebreaks: {automatic: true}}
};
"""

EXTRA_CSS = """
.md-grid { max-width: 90rem; }
.md-typeset .nb-output { overflow-x: auto; margin: 0 0 1em; }
.md-typeset .nb-output table { font-size: .7rem; border-collapse: collapse; }
.md-typeset .nb-output th, .md-typeset .nb-output td { padding: .2em .6em; border-bottom: 1px solid var(--md-default-fg-color--lightest); text-align: right; }
.md-typeset img { max-width: 100%; height: auto; }
.md-typeset h3 small, .md-typeset h4 small { font-weight: normal; color: var(--md-default-fg-color--light); font-size: .65em; margin-left: .4em; }
.md-typeset table:not([class]) { font-size: .7rem; }
.md-typeset .arithmatex { overflow-x: auto; }
.md-typeset td:first-child code { white-space: nowrap; }
"""

# ---------------------------------------------------------------- offline search

IFRAME_WORKER = """// Search from file://. Material's search runs in a Web Worker, which a page opened from disk may not start
// (Chromium: "cannot be accessed from origin 'null'"). Material's offline plugin inlines the index into
// search/search_index.js and expects a Worker shim (it would load iframe-worker from unpkg.com, a CDN); this is the
// shim, offline: the worker script runs in a hidden same-origin iframe and messages are passed as events.
(function () {
  if (location.protocol !== "file:") return;
  function IFrameWorker(url) {
    var self = this, queue = [], base = new URL(url, location.href).href;
    this.onmessage = null; this.onerror = null; this._listeners = {message: [], error: []};
    var iframe = document.createElement("iframe");
    iframe.setAttribute("aria-hidden", "true"); iframe.tabIndex = -1;
    iframe.style.cssText = "position:absolute;width:0;height:0;border:0;visibility:hidden";
    (document.body || document.documentElement).appendChild(iframe);
    var w = iframe.contentWindow, d = iframe.contentDocument;
    this._window = w; this._ready = false;
    w.postMessage = function (data) { setTimeout(function () { self._emit("message", data); }); };
    w.importScripts = function () {   // the worker awaits it (only needed for languages other than English)
      var urls = Array.prototype.slice.call(arguments);
      return urls.reduce(function (p, u) { return p.then(function () { return load(u); }); }, Promise.resolve());
    };
    function load(u) {
      return new Promise(function (res, rej) {
        var s = d.createElement("script"); s.src = new URL(u, base).href; s.onload = res;
        s.onerror = function (e) { self._emit("error", e); rej(e); }; d.head.appendChild(s);
      });
    }
    load(base).then(function () { self._ready = true; queue.splice(0).forEach(function (m) { self.postMessage(m); }); });
    this._queue = queue;
  }
  IFrameWorker.prototype.postMessage = function (data) {
    if (!this._ready) return void this._queue.push(data);
    var w = this._window;
    setTimeout(function () { w.dispatchEvent(new w.MessageEvent("message", {data: data})); });
  };
  IFrameWorker.prototype._emit = function (type, data) {
    var ev = type === "message" ? new MessageEvent("message", {data: data}) : data;
    if (typeof this["on" + type] === "function") this["on" + type](ev);
    this._listeners[type].forEach(function (f) { f(ev); });
  };
  IFrameWorker.prototype.addEventListener = function (t, f) { (this._listeners[t] = this._listeners[t] || []).push(f); };
  IFrameWorker.prototype.removeEventListener = function (t, f) {
    this._listeners[t] = (this._listeners[t] || []).filter(function (g) { return g !== f; });
  };
  IFrameWorker.prototype.terminate = function () { this._ready = false; };
  window.IFrameWorker = IFrameWorker;
  window.Worker = IFrameWorker;
})();
"""

# ---------------------------------------------------------------- staging and building

COST_TABLE = re.compile(r'<!-- recipe cost table:.*?-->')

def fill_tables(md:str) -> str:
    "A page's generated tables: the recipes' estimated cost (`benchmarks/recipe_cost.py`, from its measurement file)."
    if not COST_TABLE.search(md): return md
    spec = importlib.util.spec_from_file_location('recipe_cost', ROOT/'benchmarks'/'recipe_cost.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return COST_TABLE.sub(lambda m: mod.docs_table(ROOT/'docs'/'recipe_cost_cpu.json'), md)

DEVELOPMENT = {'14_main_job_study', '15_files', '18_reliability', '99_all'}   # notebooks for developers, not users
BENCH_LOG = 'benchmark_log'   # BENCHMARKS.md as is (the lab log), in the Development section

def stage(dest: Path) -> Path:
    "Lay out the MkDocs source tree (pages, API pages, assets, config) in `dest`; return the config path."
    if dest.exists(): shutil.rmtree(dest)
    dest.mkdir(parents=True); (dest/'api').mkdir()
    sys.path.insert(0, str(ROOT))
    names = Names()
    guide, tuts, dev = [], [], []
    for nb in notebooks():
        page = page_path(nb)
        (dest/page).parent.mkdir(parents=True, exist_ok=True)
        (dest/page).write_text(nb_markdown(nb, dest, page, names.linker(page)))
        if nb.name == 'index.ipynb': continue
        (tuts if nb.parent.name == TUTORIALS else dev if nb.stem in DEVELOPMENT else guide).append({nb_title(nb): page})
    if (NBS/'images').exists(): shutil.copytree(NBS/'images', dest/'images')
    for p in sorted(PAGES.glob('*.md')): (dest/p.name).write_text(names.linker(p.name)(fill_tables(p.read_text())))
    (dest/'cli_reference.md').write_text(cli_page(names.linker('cli_reference.md')))
    counts = usage_counts()
    nav_api = []
    for m in modules():
        (dest/'api'/f'{m}.md').write_text(api_page(m, names, counts))
        nav_api.append({m: f'api/{m}.md'})
    if (ROOT/'BENCHMARKS.md').exists():
        (dest/f'{BENCH_LOG}.md').write_text(benchmarks_page((ROOT/'BENCHMARKS.md').read_text()))
        dev.append({'Benchmark log (BENCHMARKS.md)': f'{BENCH_LOG}.md'})
    pages = lambda *ps: [{t: f'{n}.md'} for t, n in ps if (dest/f'{n}.md').exists()]
    nav = [{'Home': 'index.md'},
           {'Getting started': pages(('Installation', 'install'), ('Get the data and weights', 'data_and_weights'),
                                     ('What to expect', 'expect'), ('How it fits together', 'design'))},
           {'Tutorials': tuts}, {'Guide': guide}, {'Reference': [{'Command line': 'cli_reference.md'}] + nav_api},
           *pages(('Benchmarks', 'benchmarks'), ('Papers and citations', 'papers')),
           {'Development': dev}]
    copy_mathjax(dest/'assets'/'mathjax')
    (dest/'assets'/'mathjax-config.js').write_text(MATHJAX_CONFIG)
    (dest/'assets'/'extra.css').write_text(EXTRA_CSS)
    (dest/'assets'/'iframe-worker.js').write_text(IFRAME_WORKER)
    cfg = dict(
        site_name='fastreid_vehicle', site_description='Vehicle re-identification for fastai',
        docs_dir=str(dest), nav=nav,
        use_directory_urls=False,   # `page.html`, not `page/`: from disk a folder link opens a directory listing
        extra={'polyfills': ['assets/iframe-worker.js']},   # search from file:// (below); the offline plugin sees it is there   # no repo_url: the theme would query GitHub's API from every page
        theme=dict(name='material', font=False, features=['navigation.sections', 'navigation.top', 'content.code.copy']),
        extra_css=['assets/extra.css'],
        extra_javascript=['assets/mathjax-config.js', MATHJAX_URL],
        markdown_extensions=['admonition', 'tables', 'attr_list', 'md_in_html', {'toc': {'permalink': True}},
                             'pymdownx.highlight', 'pymdownx.superfences', 'pymdownx.details',
                             {'pymdownx.arithmatex': {'generic': True}}],
        validation={'links': {'not_found': 'warn', 'anchors': 'warn', 'absolute_links': 'warn', 'unrecognized_links': 'warn'},
                    'nav': {'omitted_files': 'info', 'not_found': 'warn'}},
        plugins=['search', 'offline'])   # offline: the search index also as a script (search/search_index.js)
    path = dest.parent/'mkdocs.yml'
    path.write_text(json.dumps(cfg, indent=1))  # JSON is valid YAML
    return path

class SiteProblems(RuntimeError): pass

TEX_COMMANDS = re.compile(r'\\(?:frac|dfrac|sqrt|sum|prod|int|mathrm|mathbf|mathcal|mathbb|text|textbf|operatorname|left|right|'
                          r'cdot|times|alpha|beta|gamma|delta|epsilon|varepsilon|lambda|mu|sigma|tau|theta|omega|phi|'
                          r'log|exp|max|min|arg|leq?|geq?|neq|in|hat|bar|tilde|top|infty|partial|nabla|lVert|rVert|vert)\b')
TEST_HELPERS = re.compile(r'\b(?:test_eq|test_ne|test_close|test_fail|test_is|test_eq_type|test_shuffled|test_stdout|'
                          r'test_warns|test_fig_exists)\b|\bdef _(?!_\w*__\b)\w*|Parameter containing:')
PRIVATE_NAME = re.compile(r'(?<![\w/\\\-\'">])(?:\w+\.)*_[a-z][a-z0-9]*(?:_[a-z0-9]+)*\b(?!\.\w*(?:png|jpg|csv|txt|json|pth|md)\b)(?![/\\])')
DEV_NOTES = re.compile(r'once (?:it|this|that|they) exists?|branches? in flight|\bin flight\b|\bTODO\b|\bFIXME\b|\bXXX\b|'
                       r'\b[Ss]ince issue \d+|\bissue \d+\b|\b(?:the )?lead (?:asked|wants)|\bnot (?:yet )?merged\b|'
                       r'\bwork in progress\b|\bWIP\b')
OBJECT_REPRS = re.compile(r'<[A-Z]\w*\.[A-Z][A-Z0-9_]*: [^>]{1,40}>|<(?:function|class|bound method|built-in function) [^>]{1,80}>|'
                          r'<[\w.]+ object at 0x[0-9a-f]+>')
ANNOUNCE_OK = re.compile(r'\s*<(?:p>\s*<)?(?:div class="(?:highlight|nb-output|arithmatex|admonition|language-|md-typeset__|tabbed)|pre|ul|ol|'
                         r'table|dl|details|figure|img|blockquote|svg)', re.S)
# parameter names of EfficientNet-PyTorch checkpoints (the packaged ImageNet weights): file contents, not private Python names
CHECKPOINT_KEYS = {'_conv_stem', '_bn0', '_bn1', '_bn2', '_blocks', '_depthwise_conv', '_project_conv', '_expand_conv',
                   '_se_reduce', '_se_expand', '_conv_head', '_fc'}

def _strip_tags(h:str) -> str: return html.unescape(re.sub(r'<[^>]+>', '', h))

def _page_links(f:Path, site:Path, h:str) -> list:
    "Local links and images of a page that do not open a page or file, from disk and served: missing files, folders."
    out, rel = [], f.relative_to(site)
    for m in re.finditer(r'(?:src|href)="([^"]*)"', h):
        full = html.unescape(m.group(1))
        u = full.split('#')[0].split('?')[0]
        if re.match(r'[a-z][a-z0-9+.-]*:', full) or full.startswith('//'): continue   # external: not ours to check here
        if not u: continue   # `#anchor` on the page itself
        if u.startswith('/'): out.append(f'{rel}: absolute link {full} (breaks from disk)'); continue
        t = (f.parent/u).resolve()
        if t.is_dir(): out.append(f'{rel}: link to a folder {full} (a directory listing from disk, not a page)')
        elif not t.exists(): out.append(f'{rel}: broken link or image {full}')
    return out

def check_page(rel:str, h:str, user:bool=True, api:bool=False) -> list:
    """What a reader would notice in the text of one page (`h`, its HTML): raw TeX, object reprs such as
    `<AMPMode.FP16: 'fp16'>`, temporary paths, test helpers, developer notes, announcements with nothing after them;
    on user pages also private names (`_x`, `Class._x`); on API pages entries of private names or of fastai callback
    events without a docstring."""
    problems = []
    main = re.search(r'<article[^>]*>(.*?)</article>', h, re.S)
    body = main.group(1) if main else h
    body = re.sub(r'<a class="headerlink"[^>]*>.*?</a>', '', body, flags=re.S)
    nomath = re.sub(r'<(span|div) class="arithmatex">.*?</\1>', '', body, flags=re.S)
    prose = _strip_tags(re.sub(r'<(script|style|pre|code)[^>]*>.*?</\1>', ' ', nomath, flags=re.S))
    alltext = _strip_tags(re.sub(r'<(script|style)[^>]*>.*?</\1>', ' ', nomath, flags=re.S))   # code blocks included, maths not ($G_i$ is no private name)
    for m in re.finditer(r'\$[^$\n]{0,200}\$|\$\$', prose):
        problems.append(f'{rel}: raw TeX {m.group(0)[:60]!r}')
    for m in TEX_COMMANDS.finditer(prose): problems.append(f'{rel}: raw TeX command {prose[max(0, m.start()-20):m.end()+20]!r}')
    for m in MACHINE_PATHS.finditer(_strip_tags(re.sub(r'<[^>]+>', ' ', body))):
        problems.append(f'{rel}: machine path {m.group(0)[:60]!r}')
    for m in re.finditer(r'\S*\\\|\S*', alltext): problems.append(f'{rel}: a table pipe shown with its backslash {m.group(0)[:40]!r}')
    for m in OBJECT_REPRS.finditer(alltext): problems.append(f'{rel}: an object repr instead of a readable value {m.group(0)!r}')
    for m in TEST_HELPERS.finditer(alltext): problems.append(f'{rel}: test helper {alltext[max(0, m.start()-30):m.end()+30]!r}')
    for m in DEV_NOTES.finditer(prose) if user else ():
        problems.append(f'{rel}: developer note {prose[max(0, m.start()-40):m.end()+40]!r}')
    if user:
        seen = set()
        for m in PRIVATE_NAME.finditer(alltext):
            if all(part in CHECKPOINT_KEYS or part in ('N', '') or part.isdigit() for part in m.group(0).split('.')): continue
            if m.group(0) not in seen: seen.add(m.group(0)); problems.append(f'{rel}: private name {m.group(0)!r}')
    for m in re.finditer(r'<p>((?:(?!<p>).)*?):\s*</p>(.{0,120})', body, re.S):
        after = m.group(2)
        if not ANNOUNCE_OK.match(after):
            problems.append(f'{rel}: announcement with nothing after it {_strip_tags(m.group(1))[-70:] + ":"!r}')
    if api:
        events = _callback_events()
        for m in re.finditer(r'<h([34]) id="fastreid_vehicle\.([\w.]+)"[^>]*>(.*?)(?=<h[1-4][ >]|$)', body, re.S):
            last = m.group(2).rsplit('.', 1)[-1]
            if last.startswith('_'): problems.append(f'{rel}: API entry of a private name {m.group(2)}')
            elif last in events and '<p>' not in m.group(3):
                problems.append(f'{rel}: API entry of the callback event {m.group(2)} without a docstring')
    return problems

def check_site(site:Path, expected_pages, development=()) -> list:
    """What a reader would notice, on every page: missing pages, links and images that do not open (from disk and served:
    missing files, links to folders), and the text problems of `check_page`. `development`: pages of the Development
    section, where private names and developer notes are expected."""
    problems = []
    for p in expected_pages:
        if not (site/p).exists(): problems.append(f'missing page {p}')
    for f in sorted(site.rglob('*.html')):
        rel = f.relative_to(site)
        if rel.parts[0] in ('assets', 'search') or rel.name == '404.html': continue
        h = f.read_text()
        problems += _page_links(f, site, h)
        problems += check_page(str(rel), h, user=str(rel) not in development and rel.parts[0] != 'api', api=rel.parts[0] == 'api')
    return problems

def html_page(md:str) -> str: return str(Path(md).with_suffix('.html'))

def expected_pages() -> list:
    pages = [html_page(page_path(nb)) for nb in notebooks()]
    pages += [f'api/{m}.html' for m in modules()] + ['cli_reference.html', f'{BENCH_LOG}.html']
    pages += [f'{p.stem}.html' for p in PAGES.glob('*.md')]
    return pages

def development_pages() -> list:
    "The pages of the Development section (internal notebooks, the benchmark log)."
    return [html_page(page_path(nb)) for nb in notebooks() if nb.stem in DEVELOPMENT] + [f'{BENCH_LOG}.html']

def build(out: Path = ROOT/'_docs'/'site', quiet: bool = True, check: bool = True) -> Path:
    """Build the site into `out` and return its `index.html`; `check`: then raise `SiteProblems` listing what a reader
    would notice (the site stays written, to look at)."""
    out = Path(out).resolve()
    cfg = stage(out.parent/f'{out.name}_src')
    cmd = [sys.executable, '-m', 'mkdocs', 'build', '-f', str(cfg), '-d', str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    if res.returncode: raise RuntimeError(f'mkdocs build failed:\n{res.stdout}\n{res.stderr}')
    if not quiet: print(res.stdout + res.stderr)
    plain_search_maths(out/'search')
    (out/'.mkdocs-warnings').write_text('\n'.join(l for l in (res.stdout + res.stderr).splitlines() if l.startswith('WARNING')))
    if check:
        problems = site_problems(out)
        if problems: raise SiteProblems(f'{len(problems)} problems in the docs site:\n' + '\n'.join(problems))
    return out/'index.html'

def plain_math(tex:str) -> str:
    "Maths as plain text for search previews, which MathJax does not typeset (`AC_{ID}` -> `AC_ID`, `\\lambda` -> `lambda`)."
    tex = re.sub(r'\\(?:mathrm|text|mathbf|operatorname|mathcal|left|right|,|;|!|quad)\b', '', tex)
    return re.sub(r'\s+', ' ', re.sub(r'[{}]|\\(?=[a-zA-Z])', '', tex)).strip()

def plain_search_maths(search:Path):
    "The search index (and its offline copy) with `\\(...\\)` / `\\[...\\]` maths as plain text."
    f = search/'search_index.json'
    if not f.exists(): return
    idx = json.loads(f.read_text())
    for d in idx.get('docs', []):
        for k in ('text', 'title'):
            if d.get(k): d[k] = re.sub(r'\\\((.+?)\\\)|\\\[(.+?)\\\]', lambda m: plain_math(m.group(1) or m.group(2)), d[k], flags=re.S)
    data = json.dumps(idx, separators=(',', ':'))
    f.write_text(data)
    if (search/'search_index.js').exists(): (search/'search_index.js').write_text(f'var __index = {data}')

def site_problems(out: Path) -> list:
    "MkDocs' warnings of the build of `out` and the problems `check_site` finds in it."
    w = out/'.mkdocs-warnings'
    idx = out/'search'/'search_index.json'
    tex = [f'search preview with raw TeX: {d["location"]}' for d in (json.loads(idx.read_text())['docs'] if idx.exists() else [])
           if re.search(r'\\[()\[\]]', d.get('text', ''))][:10]
    return [l for l in (w.read_text().splitlines() if w.exists() else []) if l] + tex + check_site(out, expected_pages(), development_pages())

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--readme', action='store_true', help='only rewrite README.md from nbs/index.ipynb')
    p.add_argument('--out', default=str(ROOT/'_docs'/'site'), help='output folder of the site')
    p.add_argument('--run-examples', nargs='+', metavar='NOTEBOOK',
                   help='only run these notebooks as their pages show them (see `run_examples`), then exit')
    a = p.parse_args()
    if a.run_examples:
        for nb in a.run_examples: run_examples(Path(nb)); print(f'{nb}: the examples run as shown')
        return
    write_atomic(ROOT/'README.md', readme_text())
    if a.readme: return print('wrote README.md')
    try: print('site:', build(Path(a.out), quiet=False))
    except SiteProblems as e: sys.exit(f'{e}\n\nThe site is written in {a.out} (open index.html) with these problems.')

if __name__ == '__main__': main()
