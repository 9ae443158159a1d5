"Atomic writes, usual file modes and no leftovers: `fastreid_vehicle.files` and the writers that use it."
import json, os, signal, stat, subprocess, sys, time
from pathlib import Path
import pytest
from fastreid_vehicle.files import (atomic_path, atomic_folder, atomic_write_json, current_umask, is_stale_temp, make_temp_dir,
                                    remove_stale_temps, temp_prefix)
from fastreid_vehicle.synthetic import synthesize_veri

ROOT = Path(__file__).resolve().parent.parent

def _mode(p): return stat.S_IMODE(Path(p).stat().st_mode)

def test_atomic_write_mode_and_no_leftover(tmp_path):
    p = atomic_write_json({'x': 1.5}, tmp_path/'a'/'m.json')
    assert json.loads(p.read_text()) == {'x': 1.5}
    assert _mode(p) == 0o666 & ~current_umask()
    assert [o.name for o in p.parent.iterdir()] == ['m.json']

def test_atomic_path_failure_keeps_old_file(tmp_path):
    (tmp_path/'f.txt').write_text('old')
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path/'f.txt') as t:
            t.write_text('half'); raise KeyboardInterrupt
    assert (tmp_path/'f.txt').read_text() == 'old' and len(list(tmp_path.iterdir())) == 1

def test_atomic_folder_replaces_whole_and_keeps_old_on_failure(tmp_path):
    dest = tmp_path/'idx'
    with atomic_folder(dest) as t:
        assert t.parent == tmp_path and t.name.startswith(temp_prefix('idx')) and not dest.exists()
        (t/'a').write_text('1')
    with atomic_folder(dest) as t: (t/'b').write_text('2')
    assert sorted(p.name for p in dest.iterdir()) == ['b'] and _mode(dest) == 0o777 & ~current_umask()
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(dest) as t: (t/'c').write_text('half'); raise KeyboardInterrupt
    assert sorted(p.name for p in dest.iterdir()) == ['b']
    with atomic_folder(dest, keep_existing=lambda d: (d/'b').read_text() == '2') as t: (t/'d').write_text('3')
    assert sorted(p.name for p in dest.iterdir()) == ['b']
    with atomic_folder(dest, keep_existing=lambda d: False) as t: (t/'e').write_text('4')
    assert sorted(p.name for p in dest.iterdir()) == ['e'] and [p.name for p in tmp_path.iterdir()] == ['idx']

def test_stale_temps_only_of_dead_processes(tmp_path):
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from fastreid_vehicle.files import make_temp_dir; print(make_temp_dir({str(tmp_path)!r}, 'd'))"
    dead = Path(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip())
    live, other = make_temp_dir(tmp_path, 'd'), make_temp_dir(tmp_path, 'e')
    (tmp_path/'.d.keep').mkdir()                                       # not a temporary name: never touched
    assert dead.name.startswith('.d.tmp-') and is_stale_temp(dead) and not is_stale_temp(live)
    assert remove_stale_temps(tmp_path, 'd') == [dead]
    assert live.exists() and other.exists() and (tmp_path/'.d.keep').exists()
    assert _mode(live) == 0o777 & ~current_umask()

def test_killed_synth_leaves_nothing_the_next_run_keeps(tmp_path):
    dest = tmp_path/'veri'
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from fastreid_vehicle.synthetic import synthesize_veri; "
            f"synthesize_veri({str(dest)!r}, 'tiny', seed=0, n_workers=1)")
    proc = subprocess.Popen([sys.executable, '-c', code], env={**os.environ, 'OMP_NUM_THREADS': '1'})
    try:
        t0 = time.time()
        while not list(tmp_path.glob('.veri.tmp-*/image_train/*.jpg')):   # generation under way
            assert proc.poll() is None and time.time() - t0 < 120, 'the generator ended before it could be killed'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL); proc.wait()
    finally:
        if proc.poll() is None: proc.kill()
    left = list(tmp_path.glob('.veri.tmp-*'))
    assert left and not dest.exists()                                   # the kill left a temporary folder, no dataset
    synthesize_veri(dest, 'tiny', seed=0, n_workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['veri']       # the next run removed the leftover
    assert _mode(dest) == 0o777 & ~current_umask()
    assert _mode(next((dest/'image_train').iterdir())) == 0o666 & ~current_umask()
    assert all(_mode(p) == 0o666 & ~current_umask() for p in dest.iterdir() if p.is_file())


# ---------------------------------------------------------------- checks moved from nbs/15_files.ipynb, run in the module's namespace
def test_files_notebook_examples(tmp_path):
    from fastcore.test import test_eq, test_fail; import stat, subprocess, sys, json, shutil, tempfile; from pathlib import Path
    import fastreid_vehicle.files as _M
    g = globals(); g.update({k: v for k, v in vars(_M).items() if not k.startswith('__')})
    tmp = tmp_path
    p = atomic_write_json({'a': 1}, tmp/'out.json')
    test_eq(json.loads(p.read_text()), {'a': 1})
    test_eq(stat.S_IMODE(p.stat().st_mode), 0o666 & ~current_umask())
    test_eq(sorted(o.name for o in tmp.iterdir()), ['out.json'])
    def _fail():
        with atomic_path(tmp/'out.json') as t:
            t.write_text('half'); raise RuntimeError('killed')
    test_fail(_fail, contains='killed')
    test_eq(json.loads((tmp/'out.json').read_text()), {'a': 1})
    test_eq(sorted(o.name for o in tmp.iterdir()), ['out.json'])
    with atomic_folder(tmp/'index') as t: (t/'a.txt').write_text('1')
    with atomic_folder(tmp/'index') as t: (t/'b.txt').write_text('2')
    test_eq(sorted(o.name for o in (tmp/'index').iterdir()), ['b.txt'])
    test_eq(stat.S_IMODE((tmp/'index').stat().st_mode), 0o777 & ~current_umask())
    def _fail():
        with atomic_folder(tmp/'index') as t:
            (t/'c.txt').write_text('half'); raise RuntimeError('killed')
    test_fail(_fail, contains='killed')
    test_eq(sorted(o.name for o in (tmp/'index').iterdir()), ['b.txt'])
    with atomic_folder(tmp/'index', keep_existing=lambda p: (p/'b.txt').exists()) as t: (t/'d.txt').write_text('3')
    test_eq(sorted(o.name for o in (tmp/'index').iterdir()), ['b.txt'])
    test_eq(sorted(o.name for o in tmp.iterdir()), ['index', 'out.json'])
    with atomic_folder(tmp/'gi', kind='gallery_index') as t: (t/'a.txt').write_text('1')
    test_eq(read_marker(tmp/'gi'), {'kind': 'gallery_index', 'version': 1})
    with atomic_folder(tmp/'gi', kind='gallery_index') as t: (t/'b.txt').write_text('2')   # its own: replaced
    test_eq(sorted(o.name for o in (tmp/'gi').iterdir()), [MARKER, 'b.txt'])
    (tmp/'photos').mkdir(); (tmp/'photos'/'car.jpg').write_bytes(b'x')
    def _photos():
        with atomic_folder(tmp/'photos', kind='gallery_index') as t: pass
    test_fail(_photos, contains='car.jpg')
    test_eq([o.name for o in (tmp/'photos').iterdir()], ['car.jpg'])
    shutil.rmtree(tmp/'gi'); shutil.rmtree(tmp/'photos')
    ev = claim_folder(tmp/'ev', 'evaluation'); test_eq(claim_folder(ev, 'evaluation'), ev)
    (tmp/'run').mkdir(); (tmp/'run'/'run.json').write_text('{}'); (tmp/'run'/'metrics.json').write_text('{}')
    test_fail(lambda: claim_folder(tmp/'run', 'evaluation'), contains='a training run')
    test_eq(sorted(o.name for o in (tmp/'run').iterdir()), ['metrics.json', 'run.json'])
    shutil.rmtree(ev); shutil.rmtree(tmp/'run')
    import fastreid_vehicle
    pkg_root = str(Path(fastreid_vehicle.__file__).parent.parent)
    code = f"import sys; sys.path.insert(0, {pkg_root!r}); from fastreid_vehicle.files import make_temp_dir; print(make_temp_dir({str(tmp)!r}, 'data'))"
    dead = Path(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip())
    live = make_temp_dir(tmp, 'data')
    test_eq(stat.S_IMODE(live.stat().st_mode), 0o777 & ~current_umask())
    assert is_stale_temp(dead) and not is_stale_temp(live)
    test_eq(remove_stale_temps(tmp, 'data'), [dead])
    assert live.exists() and not dead.exists()
