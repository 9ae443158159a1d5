"The main-job tries script (benchmarks/main_job_tries.py): its values, its patches and its table of the results file."
import json, sys
from pathlib import Path
import pytest
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'benchmarks'))
import main_job_tries as mt


def test_values_and_bad_arguments(capsys):
    assert [mt.parse_value(v) for v in ('4', 'true', '[64, 64]', 'gem', '0.005')] == [4, True, [64, 64], 'gem', 0.005]
    with pytest.raises(SystemExit): mt.main(['try1', 'P4'])                  # not SETTING=VALUE
    with pytest.raises(SystemExit, match='unknown patch'): mt.apply_patch('sharpen')


def test_table_reads_the_results_file(tmp_path, capsys):
    row = dict(name='softm', changed={'soft_margin': True}, patch=None, rank1=.8234, mAP=.7896, mINP=.6667,
               train_seconds=413.0, loadavg_1min=2.1)
    (tmp_path/'r.json').write_text(json.dumps({'runs': [row, dict(row, name='n05', changed={}, patch='norm05')]}))
    mt.main(['--table', '--out', str(tmp_path/'r.json')])
    out = capsys.readouterr().out
    assert '| softm | soft_margin=True | 0.8234 | 0.7896 | 0.6667 | 413 | 2.1 |' in out
    assert '| n05 |  (patch norm05) |' in out


def test_the_recorded_tries_hold_their_full_settings():
    res = json.loads(mt.OUT.read_text())
    assert res['runs'] and all({'P', 'K', 'epochs', 'settings'} <= set(r['settings']) for r in res['runs'])
