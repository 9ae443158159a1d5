"""The docs site builds offline from the notebooks, with an API page per module; the README is the index notebook."""
import importlib.util, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location('build_docs', ROOT/'docs'/'build_docs.py')
build_docs = importlib.util.module_from_spec(spec); spec.loader.exec_module(build_docs)

def test_readme_is_generated_from_index_notebook():
    assert (ROOT/'README.md').read_text() == build_docs.readme_text(), 'run `python docs/build_docs.py --readme`'

def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    cmds = re.findall(r'```bash\n(.+?)\n```', (ROOT/'README.md').read_text(), re.S)
    assert len(cmds) == 2, cmds
    assert all('pip install' in c for c in cmds)
    ci = (ROOT/'.ci'/'run').read_text()
    assert cmds[1].strip() in ci, '.ci/run must call the README test command'

def test_docs_site_builds(tmp_path):
    index = build_docs.build(tmp_path/'site')
    assert index.exists()
    for nb in build_docs.notebooks():
        page = tmp_path/'site'/build_docs.page_name(nb).removesuffix('.ipynb')/'index.html'
        if nb.name != 'index.ipynb': assert page.exists(), page
    for m in build_docs.modules():
        html = (tmp_path/'site'/'api'/m/'index.html').read_text()
        assert f'fastreid_vehicle.{m}' in html
    assert 'fastreid_vehicle' in index.read_text()
