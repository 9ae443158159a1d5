"Issue 19: nothing the user owns is deleted or replaced, untrusted files run no code, every fault is named."
import errno, json, os
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from fastreid_vehicle.files import (atomic_folder, atomic_path, CorruptFileError, NoSpaceError, FolderNotOwnedError, MARKER,
                                    read_marker, StorageError)
from fastreid_vehicle.search import GalleryIndex
from fastreid_vehicle.images import open_rgb

def _index(n=6, dim=4):
    rng = np.random.default_rng(0)
    return GalleryIndex(dim).add(rng.normal(size=(n, dim)), {'path': [f'/g/{i}.jpg' for i in range(n)]})

# --- 1. nothing the user owns is deleted or replaced

def test_index_save_refuses_a_folder_of_photos(tmp_path):
    photos = tmp_path/'photos'; photos.mkdir(); (photos/'car.jpg').write_bytes(b'jpeg')
    with pytest.raises(FolderNotOwnedError, match=r'photos.*car\.jpg'): _index().save(photos)
    assert [p.name for p in photos.iterdir()] == ['car.jpg'] and sorted(p.name for p in tmp_path.iterdir()) == ['photos']

def test_index_save_refuses_a_run_folder_and_replaces_its_own(tmp_path):
    run = tmp_path/'run'; run.mkdir()
    for n in ('learner.pkl', 'model.safetensors', 'checkpoint.pth', 'run.json'): (run/n).write_bytes(b'x')
    with pytest.raises(FileExistsError, match='learner.pkl'): _index().save(run)
    assert sorted(p.name for p in run.iterdir()) == ['checkpoint.pth', 'learner.pkl', 'model.safetensors', 'run.json']
    idx = _index().save(tmp_path/'idx')
    assert read_marker(idx) == {'kind': 'gallery_index', 'version': 1}
    _index(8).save(idx)   # its own kind: replaced
    assert len(GalleryIndex.load(idx)) == 8
    (idx/MARKER).unlink()   # an index saved before markers: recognised by its header
    _index(5).save(idx); assert len(GalleryIndex.load(idx)) == 5
    with pytest.raises(FileExistsError, match='overwrite'): _index().save(idx, overwrite=False)

def test_atomic_folder_refuses_another_kind(tmp_path):
    with atomic_folder(tmp_path/'a', kind='evaluation') as t: (t/'m.json').write_text('{}')
    with pytest.raises(FolderNotOwnedError, match='evaluation'):
        with atomic_folder(tmp_path/'a', kind='gallery_index') as t: pass
    assert (tmp_path/'a'/'m.json').exists()

# --- 5. named errors

@pytest.mark.parametrize('fault', ['header_garbage', 'header_no_ntotal', 'header_utf16', 'embeddings_truncated', 'metadata_binary', 'faiss_truncated'])
def test_corrupted_index_is_named(tmp_path, fault):
    kind = 'ivf' if fault == 'faiss_truncated' else 'exact'
    gi = GalleryIndex(4, kind=kind, nlist=2) if kind == 'ivf' else GalleryIndex(4)
    gi.add(np.random.default_rng(0).normal(size=(100, 4)), {'path': [f'{i}.jpg' for i in range(100)]})
    d = gi.save(tmp_path/'idx', metadata_format='csv')
    h = d/'header.json'
    if fault == 'header_garbage': h.write_text('{"format": "fastreid_vehicle.GalleryIndex", "vers')
    elif fault == 'header_no_ntotal':
        j = json.loads(h.read_text()); del j['ntotal']; h.write_text(json.dumps(j))
    elif fault == 'header_utf16': h.write_bytes(h.read_text().encode('utf-16'))
    elif fault == 'embeddings_truncated':
        e = d/'embeddings.safetensors'; e.write_bytes(e.read_bytes()[:100])
    elif fault == 'metadata_binary': (d/'metadata.csv').write_bytes(b'path\n\xff\xfe\x00\x81bad\n' * 3)
    else:
        f = d/'index.faiss'; f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(CorruptFileError) as e: GalleryIndex.load(d)
    assert str(d) in str(e.value) and 'not a readable' in str(e.value)
    assert isinstance(e.value, ValueError)

@pytest.mark.parametrize('exc', [OSError(errno.ENOSPC, 'No space left on device'),
                                 RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0')])
def test_full_disk_is_named_with_the_free_space(tmp_path, exc):
    with pytest.raises(NoSpaceError) as e:
        with atomic_path(tmp_path/'checkpoint.pth') as t:
            t.write_bytes(b'half'); raise exc
    msg = str(e.value)
    assert 'no space left' in msg and str(tmp_path/'checkpoint.pth') in msg and 'MiB free' in msg
    assert isinstance(e.value, StorageError) and list(tmp_path.iterdir()) == []

# --- 6. images as a person sees them

def _portrait(path, orientation=6):
    ex = Image.Exif(); ex[0x0112] = orientation
    a = np.zeros((20, 40, 3), np.uint8); a[:, :10] = 255   # stored landscape, white band on the left
    Image.fromarray(a).save(path, exif=ex, quality=95)
    return path

def test_exif_orientation_applied_in_open_rgb_and_data(tmp_path):
    from fastreid_vehicle.data import ReidImage
    p = _portrait(tmp_path/'p.jpg')
    im = open_rgb(p)
    assert im.size == (20, 40)   # upright: portrait
    a = np.asarray(im)
    assert a[:10].mean() > 200 and a[-10:].mean() < 50   # rotated 90 clockwise: the left band is now on top
    assert ReidImage.create(str(p)).size == (20, 40)
    assert open_rgb(_portrait(tmp_path/'q.jpg', 1)).size == (40, 20)

# --- 2. one run per folder at a time; a killed run is recognised

import signal, subprocess, sys, time
from fastreid_vehicle.runs import prepare_run, read_run, RunInUseError, unlock_run, update_run, CHECKPOINT
ROOT = Path(__file__).resolve().parent.parent

def _holder(out):
    "A process that claims `out` as a run, writes a history line and sleeps (a training that is running)"
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from fastreid_vehicle.runs import prepare_run; "
            f"from pathlib import Path; prepare_run({str(out)!r}, dict(seed=0)); Path({str(out)!r}, 'history.csv').write_text('epoch\\n'); "
            "print('ready', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'ready'
    return p

def test_second_run_in_a_folder_is_refused_and_a_killed_one_recognised(tmp_path):
    out = tmp_path/'run'
    p = _holder(out)
    try:
        with pytest.raises(RunInUseError, match=rf'{out} is in use: process {p.pid}'): prepare_run(out, dict(seed=0), overwrite=True)
        assert (out/'history.csv').exists() and read_run(out)['status'] == 'running'   # nothing of the first run touched
    finally:
        p.send_signal(signal.SIGKILL); p.wait()
    with pytest.warns(UserWarning, match=r'previous run in .* was interrupted at .*before its first checkpoint'):
        with pytest.raises(FileExistsError, match='was interrupted'): prepare_run(out, dict(seed=0))
    with pytest.warns(UserWarning) as w: assert prepare_run(out, dict(seed=0), resume=True) is None
    msgs = ' '.join(str(x.message) for x in w)
    assert 'interrupted' in msgs and 'holds no checkpoint' in msgs and 'starts from epoch 0' in msgs
    assert read_run(out)['interrupted'][0]['message'].startswith('the previous run')
    update_run(out, status='complete')   # the run ended: its lock is free for another process
    r = subprocess.run([sys.executable, '-c', f"import sys; sys.path.insert(0, {str(ROOT)!r}); from fastreid_vehicle.runs import lock_run; lock_run({str(out)!r})"])
    assert r.returncode == 0

def test_run_outputs_without_a_record_are_not_removed(tmp_path):
    (tmp_path/'metrics.json').write_text('{"mine": 1}')
    with pytest.raises(FolderNotOwnedError, match='metrics.json'): prepare_run(tmp_path, dict(seed=0), overwrite=True)
    assert (tmp_path/'metrics.json').read_text() == '{"mine": 1}'

# --- 3. untrusted files run no code: eval / search rebuild the model from model.safetensors + run.json

import pickle, torch
from fastreid_vehicle.runs import load_run_learner
from fastreid_vehicle.inference import embed

@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    from fastreid_vehicle.synthetic import synthesize_veri
    from fastreid_vehicle.pipeline import train
    d = tmp_path_factory.mktemp('rel')
    root = synthesize_veri(d/'veri', 'tiny', seed=0, n_workers=1)
    train(preset='tiny', root=root, out=d/'run', size=(64, 48), P=4, K=4, epochs=1, progress=False, threads=1, seed=0)
    return root, d/'run'

def test_rebuilt_learner_gives_the_pickled_learners_features(tiny_run):
    from fastreid_vehicle.readers import load_veri776
    root, run = tiny_run
    safe = load_run_learner(run)
    with pytest.warns(UserWarning, match='runs whatever code'): pick = load_run_learner(run, trust_pickle=True)
    qg = load_veri776(root).query("split != 'train'").reset_index(drop=True)
    fa = embed(safe, safe.dls.test_dl(qg, bs=16), flip_tta=True)
    fb = embed(pick, pick.dls.test_dl(qg, bs=16), flip_tta=True)
    assert fa.shape == fb.shape and torch.equal(fa, fb)

class _Evil:
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def test_crafted_pickle_runs_no_code_by_default(tiny_run, tmp_path):
    import shutil
    from fastreid_vehicle.pipeline import search_images
    _, run = tiny_run
    bad = tmp_path/'run'; shutil.copytree(run, bad)
    evil = _Evil(); evil.marker = tmp_path/'pwned'
    (bad/'learner.pkl').write_bytes(pickle.dumps(evil))
    q = sorted((run.parent/'veri'/'image_query').glob('*.jpg'))[:2]
    res = search_images(bad, q, gallery=run.parent/'veri'/'image_test', k=2)
    assert len(res.metadata) and not evil.marker.exists()

def test_truncated_learner_and_weights_are_named(tiny_run, tmp_path):
    import shutil
    _, run = tiny_run
    bad = tmp_path/'run'; shutil.copytree(run, bad)
    for n in ('learner.pkl', 'model.safetensors'): (bad/n).write_bytes((run/n).read_bytes()[:1000])
    with pytest.raises(CorruptFileError, match=r'model\.safetensors: not a readable'): load_run_learner(bad)
    with pytest.warns(UserWarning), pytest.raises(CorruptFileError, match=r'learner\.pkl: not a readable saved learner'):
        load_run_learner(bad, trust_pickle=True)

def test_cli_help_says_why(capsys):
    from fastreid_vehicle.cli import main
    for cmd in ('eval', 'search'):
        with pytest.raises(SystemExit): main([cmd, '--help'])
        out = capsys.readouterr().out
        assert '--trust-pickle' in out and 'runs code' in ' '.join(out.split())

def test_eval_refuses_to_write_over_a_training_run(tiny_run):
    from fastreid_vehicle.pipeline import evaluate_run
    root, run = tiny_run
    before = {n: (run/n).read_bytes() for n in ('metrics.json', 'retrieval.png', 'cmc.png')}
    with pytest.raises(FolderNotOwnedError, match=r'a training run of this library'):
        evaluate_run(run, preset='tiny', root=root, out=run, progress=False)
    assert before == {n: (run/n).read_bytes() for n in before}

# --- 4. dataset tables checked; one reader of tables; encodings not guessed

from fastreid_vehicle.readers import load_custom, DatasetFormatError
from fastreid_vehicle.images import image_table

def _imgs(d, n=4):
    d.mkdir(exist_ok=True)
    for i in range(n): Image.new('RGB', (8, 8)).save(d/f'{i}.jpg')
    return d

ROWS = 'path,pid,camid,split\n0.jpg,1,1,train\n1.jpg,1,2,train\n2.jpg,2,1,query\n3.jpg,2,2,gallery\n'

@pytest.mark.parametrize('extra,msg', [
    ('3.jpg,2,2,gallery\n', r'1 row\(s\) repeat an earlier row.*line 6 repeat .*line 5'),
    ('3.jpg,5,2,gallery\n', r'3\.jpg has 2 identities: .*line 5, .*line 6'),
    ('0.jpg,1,1,gallery\n', r'1 image\(s\) are in the training split and in query/gallery.*0\.jpg'),
])
def test_custom_csv_conflicting_rows_are_errors_naming_lines(tmp_path, extra, msg):
    _imgs(tmp_path); (tmp_path/'d.csv').write_text(ROWS + extra)
    with pytest.raises(DatasetFormatError, match=msg): load_custom(tmp_path/'d.csv')

def test_repeated_rows_can_be_dropped_with_a_count(tmp_path):
    _imgs(tmp_path); (tmp_path/'d.csv').write_text(ROWS + '3.jpg,2,2,gallery\n2.jpg,2,1,query\n')
    with pytest.warns(UserWarning, match=r'2 row\(s\) repeat.*dropped'): df = load_custom(tmp_path/'d.csv', duplicates='drop')
    assert len(df) == 4

def test_non_utf8_tables_are_refused_not_guessed(tmp_path):
    _imgs(tmp_path/'Zürich')
    csv = 'path,pid,camid,split\n' + ''.join(f'Zürich/{i}.jpg,{i // 2},{i},{s}\n' for i, s in enumerate(['train', 'train', 'query', 'gallery']))
    (tmp_path/'d.csv').write_bytes(csv.encode('latin-1'))   # its bytes also decode as GB18030 (to CJK text)
    with pytest.raises(DatasetFormatError, match=r'd\.csv, line 2: is not UTF-8 text.*not guessed'): load_custom(tmp_path/'d.csv')
    assert load_custom(tmp_path/'d.csv', encoding='latin-1').path[0] == str(tmp_path/'Zürich'/'0.jpg')
    g = 'path\n' + ''.join(f'Zürich/{i}.jpg\n' for i in range(4))
    (tmp_path/'g16.csv').write_text(g, encoding='utf-16'); (tmp_path/'g1.csv').write_bytes(g.encode('latin-1'))
    with pytest.raises(DatasetFormatError, match=r'g16\.csv: is UTF-16'): image_table(tmp_path/'g16.csv')
    with pytest.raises(DatasetFormatError, match=r'g1\.csv, line 2: is not UTF-8'): image_table(tmp_path/'g1.csv')
    assert len(image_table(tmp_path/'g1.csv', encoding='latin-1')) == 4
    (tmp_path/'g2.csv').write_text(g + 'Zürich/1.jpg\n')
    with pytest.raises(ValueError, match=r'listed more than once.*1\.jpg on lines 3, 6'): image_table(tmp_path/'g2.csv')

# --- 6b / 7. a bad gallery image is listed (or skipped); what was left out is said

def test_search_lists_or_skips_undecodable_gallery_images(tiny_run, tmp_path):
    import shutil
    from fastreid_vehicle.pipeline import search_images
    from fastreid_vehicle.images import BadImagesError
    root, run = tiny_run
    gal = tmp_path/'gal'; gal.mkdir()
    for p in sorted((root/'image_test').glob('*.jpg'))[:6]: shutil.copy(p, gal)
    (gal/'zz_broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
    q = sorted((root/'image_query').glob('*.jpg'))[:2]
    with pytest.raises(BadImagesError, match=r'1 of 7 images cannot be used:\n.*zz_broken\.jpg.*\n.*--skip-bad-images'):
        search_images(run, q, gallery=gal, k=3)
    with pytest.warns(UserWarning, match=r'dropped 1 rows of 1 bad images \(e\.g\. .*zz_broken\.jpg'):
        res = search_images(run, q, gallery=gal, k=3, skip_bad_images=True)
    assert len(res.metadata) == 6 and not res.metadata['path'].str.contains('broken').any()

def test_eval_prints_how_many_queries_were_scored_and_left_out(tiny_run, tmp_path, capsys):
    from fastreid_vehicle.cli import main
    from fastreid_vehicle.images import skipped_note
    root, run = tiny_run
    main(['eval', str(run), '--preset', 'tiny', '--root', str(root), '--out', str(tmp_path/'ev'), '--no-progress'])
    m = json.loads((tmp_path/'ev'/'metrics.json').read_text())
    assert f"{m['num_valid']} queries scored{skipped_note(m)}" in capsys.readouterr().out
    assert skipped_note(dict(num_skipped=1)) == '; 1 query left out (no true match in the gallery)' and skipped_note(m | dict(num_skipped=0)) == ''

def test_eval_folder_of_an_older_version_is_used_again(tmp_path):
    from fastreid_vehicle.files import claim_folder
    from fastreid_vehicle.runs import is_eval_folder
    (tmp_path/'ev').mkdir(); (tmp_path/'ev'/'metrics.json').write_text('{"learner": "runs/x", "mAP": 0.5}')
    with pytest.raises(FolderNotOwnedError): claim_folder(tmp_path/'ev', 'evaluation')
    assert claim_folder(tmp_path/'ev', 'evaluation', is_own=is_eval_folder) == tmp_path/'ev'
    assert read_marker(tmp_path/'ev')['kind'] == 'evaluation'
