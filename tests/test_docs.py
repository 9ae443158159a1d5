"""The docs site builds offline from the notebooks, with an API page per module; the README is the index notebook.

The site is built once per test session (a lock lets parallel workers share it) into `_docs/test_site`;
`test_site_in_browser` opens every page in headless Chromium and saves screenshots in `_docs/screenshots/`.
Chromium: `apt-get install -y chromium` on Debian/Ubuntu (`.ci/run` does it), or point `CHROMIUM` at a Chrome binary."""
import fcntl, functools, http.server, importlib.util, json, os, re, shutil, threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('build_docs', ROOT/'docs'/'build_docs.py')
build_docs = importlib.util.module_from_spec(spec); spec.loader.exec_module(build_docs)
SITE, SHOTS = ROOT/'_docs'/'test_site', ROOT/'_docs'/'screenshots'
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync']

def test_readme_is_generated_from_index_notebook():
    assert (ROOT/'README.md').read_text() == build_docs.readme_text(), 'run `python docs/build_docs.py --readme`'

def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    cmds = re.findall(r'```bash\n(.+?)\n```', (ROOT/'README.md').read_text(), re.S)
    assert len(cmds) == 2, cmds
    assert all('pip install' in c for c in cmds)
    ci = (ROOT/'.ci'/'run').read_text()
    assert cmds[1].strip() in ci, '.ci/run must call the README test command'
    assert ci.index('chromium') < ci.index(cmds[1].strip()), '.ci/run installs Chromium before the tests'

@pytest.fixture(scope='module')
def site():
    "The built site, shared by the tests of this session (and by parallel workers, through a lock and a stamp)."
    run = os.environ.get('PYTEST_XDIST_TESTRUNUID') or f'pid{os.getpid()}'
    SITE.parent.mkdir(exist_ok=True)
    with open(SITE.parent/'test_site.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = SITE/'.built-by'
        if not (stamp.exists() and stamp.read_text() == run):
            if SITE.exists(): shutil.rmtree(SITE)
            build_docs.build(SITE)
            stamp.write_text(run)
    return SITE

def test_docs_site_builds(site):
    assert (site/'index.html').exists()
    for p in build_docs.expected_pages(): assert (site/p).exists(), p
    for m in build_docs.modules(): assert f'fastreid_vehicle.{m}' in (site/'api'/m/'index.html').read_text()
    assert len(build_docs.tutorials()) >= 4
    assert list((site/'assets'/'mathjax').glob('MathJax.js')), 'MathJax ships with the site'
    assert not re.search(r'<script[^>]+src="(?:https?:)?//', (site/'losses'/'index.html').read_text()), 'no CDN scripts'

def test_guide_pages_read_like_docs(site):
    "No source of exported code, no private helpers, no test assertions; signatures, parameter tables, cross-links."
    data = (site/'data'/'index.html').read_text()
    assert 'def from_df' not in data and 'test_eq(' not in data and 'assert ' not in data
    assert 'Identities per training batch' in data   # a parameter's `# comment`, in the parameter table
    api = (site/'api'/'data'/'index.html').read_text()
    assert 'id="fastreid_vehicle.data.ReidDataLoaders.from_df"' in api and 'Identities per training batch' in api
    assert api.index('id="fastreid_vehicle.data.ReidDataLoaders"') < api.index('id="fastreid_vehicle.data.check_pk"'), 'entry points first'
    models = (site/'api'/'models'/'index.html').read_text()
    assert re.search(r'MFGNet</span><span class="p">\(', models), 'constructor signature of MFGNet'
    assert 'href="api/learner/#fastreid_vehicle.learner.reid_learner"' in (site/'index.html').read_text(), 'cross-links'
    cli = (site/'cli_reference'/'index.html').read_text()
    assert '--epochs' in cli and 'fastreid-vehicle train' in cli
    bench = (site/'benchmarks'/'index.html').read_text()
    assert '<blockquote>' not in bench and 'helper' not in bench

def test_site_checks_catch_reader_visible_defects(tmp_path):
    page = tmp_path/'p'/'index.html'; page.parent.mkdir()
    page.write_text('<article><img src="gone.png"><p>where $\\alpha_i$ stays raw</p><pre>x</pre>'
                    '<p>saved to /tmp/tmpab12/model.pth</p><a href="../nowhere/">x</a></article>')
    probs = '\n'.join(build_docs.check_site(tmp_path, ['p/index.html', 'missing/index.html']))
    for what in ('missing page missing/index.html', 'broken link or image gone.png', 'raw LaTeX', 'machine path',
                 'broken link or image ../nowhere/'):
        assert what in probs, (what, probs)

def test_notebook_presentation_helpers():
    src, had = build_docs.strip_tests("x = f(1)\n# check it\ntest_eq(x, 2)\nfor i in range(3): assert i < 3\nx")
    assert had and src == 'x = f(1)\nx'
    assert build_docs.short_paths('saved /tmp/tmpk2j_x9/veri/a.jpg') == 'saved veri/a.jpg'
    printed = ('█\repoch  loss  time\n█\r\rEpoch 1/2 : |████----| 50.00% [1/2 00:01<00:01]\r'
               'Epoch 1/2 :          \r\n0  1.5  00:01\n  indented  row\n')
    assert build_docs.clean_progress(printed) == 'epoch  loss  time\n0  1.5  00:01\n  indented  row\n'
    assert build_docs.text_table('epoch  loss  time\n0  1.5  00:01\n1  1.2  00:01') == \
        '| epoch | loss | time |\n|---|---|---|\n| 0 | 1.5 | 00:01 |\n| 1 | 1.2 | 00:01 |'
    assert 'Identities per training batch' in build_docs.param_table(
        importlib.import_module('fastreid_vehicle.data').ReidDataLoaders.from_df, lambda s: s)

def test_notebook_page_shows_what_a_reader_needs(tmp_path):
    "Exported code as signatures (no source, no private helpers), show_doc cells, hidden and test cells left out."
    def cell(src, outputs=()): return {'cell_type': 'code', 'source': src, 'metadata': {}, 'outputs': list(outputs)}
    nb = {'cells': [{'cell_type': 'markdown', 'source': '# Data\n\nUse `check_pk` first.', 'metadata': {}},
                    cell('#| default_exp data'),
                    cell('#| export\ndef _private_helper(): pass\ndef check_pk(items, P, K): return True'),
                    cell('#| hide\nsecret_setup = 1'),
                    cell('test_eq(check_pk(1, 2, 3), True)'),
                    cell('show_doc(ReidDataLoaders.from_df)'),
                    cell("print(path)", [{'output_type': 'stream', 'name': 'stdout', 'text': '/tmp/tmpab12cd/veri/a.jpg\n'},
                                         {'output_type': 'stream', 'name': 'stderr', 'text': 'UserWarning: noise\n'}])],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path/'02_data.ipynb').write_text(json.dumps(nb))
    names = build_docs.Names()
    md = build_docs.nb_markdown(tmp_path/'02_data.ipynb', tmp_path, 'data.md', names.linker('data.md'))
    assert '[`check_pk`](api/data.md#fastreid_vehicle.data.check_pk)' in md   # cross-link
    assert '### `check_pk` <small>function</small>' in md and 'def check_pk' not in md and 'return True' not in md
    assert '_private_helper' not in md and 'secret_setup' not in md and 'test_eq' not in md and 'UserWarning' not in md
    assert '`ReidDataLoaders.from_df`' in md and 'Identities per training batch' in md
    assert 'veri/a.jpg' in md and '/tmp/' not in md

def test_benchmarks_page_for_readers():
    text = ("## Speed (metrics helper, issue 3 sections 1-2)\nTargets (issue 3): at least 20x faster, i.e.\n>= 20x here\n"
            "<!-- note to the lead -->the `small` preset as redesigned for issue 7: 600 ids\n")
    out = build_docs.benchmarks_page(text)
    assert out == "## Speed\nTargets: at least 20x faster, i.e.\n\\>= 20x here\nthe `small` preset as redesigned: 600 ids\n", out

def _chromium():
    exe = os.environ.get('CHROMIUM') or next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome')
                                              if shutil.which(n)), None)
    if exe and not os.access(exe, os.X_OK): exe = None
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return exe, 'the playwright package (pip install -e ".[dev]"; its own browsers are not needed)'
    return exe, None if exe else 'Chromium: apt-get install -y chromium (Debian/Ubuntu), or set CHROMIUM=/path/to/chrome'

@pytest.fixture
def server(site):
    handler = functools.partial(type('Quiet', (http.server.SimpleHTTPRequestHandler,), {'log_message': lambda *a: None}),
                                directory=str(site))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

MATH_DONE = """() => new Promise(res => {
  if (!window.MathJax || !MathJax.Hub) return res('no MathJax');
  MathJax.Hub.Queue(() => res('done'));
  setTimeout(() => res('timeout'), 30000);
})"""
PAGE_STATE = """() => ({
  math: document.querySelectorAll('.arithmatex').length,
  rendered: document.querySelectorAll('.arithmatex .MathJax, .arithmatex .MathJax_Display').length,
  raw: Array.from(document.querySelectorAll('.arithmatex')).filter(e => !e.querySelector('.MathJax, .MathJax_Display')
         || /Math Processing Error/.test(e.textContent)).map(e => e.textContent.slice(0, 60)),
  images: document.querySelectorAll('article img').length,
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
  clipped: Array.from(document.querySelectorAll('article table')).filter(t => {
      const box = t.closest('.md-typeset__scrollwrap, .nb-output, .md-typeset__table') || t.parentElement;
      const s = getComputedStyle(box);
      return t.scrollWidth > box.clientWidth + 1 && !['auto', 'scroll'].includes(s.overflowX);
  }).length,
})"""

def test_site_in_browser(request):
    "Every page in headless Chromium: its images load, its maths is typeset, nothing fails to load; three screenshots."
    exe, missing = _chromium()
    if missing:
        if os.environ.get('CI'): pytest.fail(f'CI must run the browser test; missing {missing}')
        pytest.skip(f'the browser test needs {missing}')
    server = request.getfixturevalue('server')   # the site is built only when a browser can open it
    from playwright.sync_api import sync_playwright
    pages = [p.removesuffix('index.html') for p in build_docs.expected_pages()]
    tutorial = build_docs.page_path(build_docs.tutorials()[0]).removesuffix('.md') + '/'
    shots = {'': 'home.png', tutorial: 'tutorial.png', 'api/data/': 'api_data.png', 'losses/': 'losses.png'}
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems, total_math = [], 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        failed = []
        page.on('requestfailed', lambda r: failed.append(r.url) if r.url.startswith('http') else None)
        page.on('response', lambda r: failed.append(f'{r.status} {r.url}') if r.status >= 400 else None)
        for rel in pages:
            failed.clear()
            page.goto(server + rel, wait_until='load')
            done = page.evaluate(MATH_DONE)
            st = page.evaluate(PAGE_STATE)
            total_math += st['rendered']
            if st['math'] and done != 'done': problems.append(f'{rel}: MathJax {done}')
            if st['raw']: problems.append(f"{rel}: {len(st['raw'])} formulas not typeset, e.g. {st['raw'][:2]}")
            if st['broken']: problems.append(f"{rel}: images not loaded {st['broken'][:3]}")
            if st['clipped']: problems.append(f"{rel}: {st['clipped']} wide tables clipped instead of scrolling")
            if failed: problems.append(f'{rel}: failed requests {failed[:3]}')
            if rel in shots: page.screenshot(path=str(SHOTS/shots[rel]), full_page=False)
        browser.close()
    assert not problems, '\n'.join(problems)
    assert total_math > 50, f'only {total_math} formulas typeset on the whole site'
    for f in shots.values(): assert (SHOTS/f).stat().st_size > 10_000, f

def test_design_page_maps_every_module():
    "The package map (docs/pages/design.md) lists each module of the package once, and no module that is gone"
    page = (ROOT/'docs'/'pages'/'design.md').read_text()
    listed = re.findall(r'^\| `(\w+)` \|', page, re.M)
    mods = sorted(p.stem for p in (ROOT/'fastreid_vehicle').glob('*.py') if not p.stem.startswith('_') and p.stem != 'all')
    assert sorted(listed) == mods
