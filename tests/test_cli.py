"The command line and `train()` on the tiny synthetic benchmark: files written, metrics sane, errors named."
import json, subprocess, sys
from pathlib import Path
import pytest
from fastreid_vehicle.cli import main, train, load_reid_data, _value

def test_train_writes_model_metrics_and_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative `out`, as the README's main command uses
    res = train(dataset='synthetic', preset='tiny', root=tmp_path/'veri', out='run', size=64, P=4, K=4,
                epochs=1, progress=False)
    for k in ('batch', 'model', 'learner', 'history', 'retrieval', 'cmc', 'metrics'): assert Path(res['files'][k]).exists(), k
    saved = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert saved['rank1'] == pytest.approx(res['rank1']) and 0 <= saved['mAP'] <= 1
    assert (tmp_path/'run'/'history.csv').read_text().startswith('epoch,train_loss,valid_loss,rank1,mAP,mINP')

def test_command_line_train_and_synth(tmp_path, capsys):
    main(['synth', str(tmp_path/'veri'), '--preset', 'tiny'])
    assert (tmp_path/'veri'/'name_train.txt').exists()
    main(['train', '--arch', 'mfgnet', '--preset', 'tiny', '--root', str(tmp_path/'veri'), '--out', str(tmp_path/'run'),
          '--size', '64,32', '--P', '4', '--K', '4', '--epochs', '1', '--no-progress', '--set', 'n_stripes=2'])
    out = capsys.readouterr().out
    assert 'mfgnet / resnet18: rank-1' in out and 'mAP' in out
    assert json.loads((tmp_path/'run'/'metrics.json').read_text())['size'] == [64, 32]

def test_real_dataset_needs_root():
    with pytest.raises(ValueError, match='root'): load_reid_data('veri776')

def test_bad_setting_is_reported(tmp_path):
    with pytest.raises(TypeError, match='n_stripez'):
        train(preset='tiny', root=tmp_path/'veri', out=tmp_path/'run', size=64, P=4, K=4, epochs=1, progress=False,
              arch='mfgnet', n_stripez=2)

def test_console_script_help():
    exe = Path(sys.executable).parent/'fastreid-vehicle'
    r = subprocess.run([str(exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'demo' in r.stdout and 'train' in r.stdout
