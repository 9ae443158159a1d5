"""Mixed precision chosen by what the CPU can do: the native-bf16 probe and its override, `amp='auto'` / forced modes
as seen from inside the model during `fit`, invalid values named, the choice printed and saved by `train()`."""
import json, platform
from pathlib import Path
import pytest, torch
from fastai.basics import Callback
from fastai.callback.training import ShortEpochCallback
from fastreid_vehicle.learner import reid_learner
from fastreid_vehicle.callbacks import (cpu_has_native_bf16, cpu_bf16_support, resolve_precision, ReidMixedPrecision,
                                        CPU_BF16_ENV)

ENV = 'FASTREID_VEHICLE_CPU_BF16'

def test_env_overrides_the_probe(monkeypatch):
    assert CPU_BF16_ENV == ENV
    monkeypatch.setenv(ENV, '0'); assert cpu_has_native_bf16() is False
    monkeypatch.setenv(ENV, '1'); assert cpu_has_native_bf16() is True
    assert cpu_bf16_support()['source'] == f'{ENV}=1'
    monkeypatch.setenv(ENV, 'maybe')
    with pytest.raises(ValueError, match=ENV): cpu_has_native_bf16()

@pytest.mark.skipif(not (Path('/proc/cpuinfo').exists() and platform.machine() == 'x86_64'), reason='Linux x86 only')
def test_probe_agrees_with_proc_cpuinfo(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv('ATEN_CPU_CAPABILITY', raising=False)
    flags = set(Path('/proc/cpuinfo').read_text().split())
    info = cpu_bf16_support()
    assert info['avx512_bf16'] == ('avx512_bf16' in flags) and info['amx_bf16'] == ('amx_bf16' in flags)
    expected = bool({'avx512_bf16', 'amx_bf16'} & flags) and info['capability'].startswith('AVX512')
    assert cpu_has_native_bf16() == expected and info['native'] == expected

class Probe(Callback):
    "Record, for every training forward pass, the dtype of the backbone's output and whether CPU autocast is on."
    def before_fit(self):
        self.seen = []
        self.h = self.learn.model.backbone.register_forward_hook(self._hook)
    def _hook(self, m, i, o):
        if m.training: self.seen.append((o.dtype, torch.is_autocast_enabled('cpu')))
    def after_fit(self): self.h.remove()

def _fit_probe(learn):
    probe = Probe()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[probe, ShortEpochCallback()])
    assert probe.seen, 'the probe saw no training forward pass'
    return set(probe.seen)

FP32, BF16 = {(torch.float32, False)}, {(torch.bfloat16, True)}

@pytest.mark.parametrize('native,amp,seen,precision,reason', [
    ('0', 'auto', FP32, 'fp32', 'CPU without native bf16'),
    ('1', 'auto', BF16, 'bf16', 'CPU with native bf16'),
    ('1', False, FP32, 'fp32', 'no mixed precision'),
    ('1', 'fp32', FP32, 'fp32', 'no mixed precision'),
    ('0', 'bf16', BF16, 'bf16', "amp='bf16' on a CPU without native bf16"),
    ('0', True, BF16, 'bf16', 'amp=True on a CPU without native bf16'),
])
def test_amp_modes_on_the_cpu(tiny_dls, monkeypatch, native, amp, seen, precision, reason):
    monkeypatch.setenv(ENV, native)
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=amp, metrics=[])
    has_cb = any(isinstance(c, ReidMixedPrecision) for c in learn.cbs)
    assert has_cb == (amp not in (False, 'fp32'))
    assert learn.train_precision()[0] == precision  # before fit: what the next fit will pick
    if precision == 'bf16' and native == '0':
        with pytest.warns(UserWarning, match='without native bf16'): got = _fit_probe(learn)
    else: got = _fit_probe(learn)
    assert got == seen
    p, why = learn.train_precision()
    assert p == precision and why.startswith(reason), why
    assert isinstance(learn.recorder.values[-1][0], float)

def test_auto_chooses_again_at_each_fit(tiny_dls, monkeypatch):
    "An 'auto' learner moved to another kind of CPU (here: the override flipped) picks that CPU's precision."
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp='auto', metrics=[])
    monkeypatch.setenv(ENV, '1'); assert _fit_probe(learn) == BF16
    monkeypatch.setenv(ENV, '0'); assert _fit_probe(learn) == FP32

def test_invalid_amp_is_named(tiny_dls):
    for bad in ('fp8', 'yes', 1, 0.5):
        with pytest.raises(ValueError, match=r"amp must be one of 'auto', True, False, 'bf16', 'fp16', 'fp32'"):
            reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=bad)
    with pytest.raises(ValueError, match="amp must be one of"): resolve_precision('half', 'cpu')
    learn = reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False)
    with pytest.raises(ValueError, match="amp_mode must be one of"): learn.to_amp('fp8')
    with pytest.raises(ValueError, match="amp='fp16' needs a CUDA device or a CPU"): resolve_precision('fp16', 'mps')

def test_train_rejects_bad_amp_before_making_data(tmp_path):
    from fastreid_vehicle.pipeline import train
    with pytest.raises(ValueError, match="amp must be one of"):
        train(preset='tiny', root=tmp_path/'veri', out=tmp_path/'run', size=64, P=4, K=4, epochs=1, progress=False, amp='on')
    assert not (tmp_path/'veri').exists()

def test_train_prints_and_saves_the_precision(tmp_path, monkeypatch, capsys):
    from fastreid_vehicle.pipeline import train
    monkeypatch.setenv(ENV, '0')
    res = train(preset='tiny', root=tmp_path/'veri', out=tmp_path/'run', size=64, P=4, K=4, epochs=1, progress=False)
    out = capsys.readouterr().out
    assert out.count('precision: fp32 (CPU without native bf16)') == 1, out
    assert res['precision'] == 'fp32'
    assert json.loads((tmp_path/'run'/'metrics.json').read_text())['precision'] == 'fp32'

def test_cli_amp_argument():
    "`--amp` takes the config's words; no flag: the config's default"
    from fastreid_vehicle.cli import _parser
    from fastreid_vehicle.config import settings_from_args
    p = _parser()
    assert settings_from_args(p.parse_args(['train'])).fit.amp == 'auto'
    assert p.parse_args(['train', '--amp', 'fp32']).amp == 'fp32'
    assert p.parse_args(['train', '--amp', 'bf16']).amp == 'bf16'
    with pytest.raises(SystemExit): p.parse_args(['train', '--amp', 'half'])


# --- fp16 / bf16 do what they say on the CPU, or are refused at the call; `train_precision` never raises

import warnings
from fastai.basics import Learner
from fastai.test_utils import synth_learner
from fastreid_vehicle import callbacks
from fastreid_vehicle.callbacks import ReidPrecisionMixin

class AutocastProbe(Callback):
    "Record (enabled, dtype) of CPU autocast at every training prediction"
    def before_fit(self): self.seen = set()
    def after_pred(self):
        if self.training: self.seen.add((torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')))

def _with_mixin(learn):
    "`learn` as an instance of a learner class with `ReidPrecisionMixin` (what the library's learner class inherits)"
    if not isinstance(learn, ReidPrecisionMixin):
        learn.__class__ = type('PrecisionLearner', (ReidPrecisionMixin, type(learn)), {})
    return learn

def _probe_fit(learn):
    probe = AutocastProbe()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[probe, ShortEpochCallback()])
    return probe.seen

def test_fp16_on_a_cpu_without_native_fp16_is_refused_at_the_call(tiny_dls, monkeypatch):
    monkeypatch.setattr(callbacks, 'cpu_has_native_fp16', lambda: False)
    with pytest.raises(ValueError, match=r"amp='fp16' on this CPU .*35x slower.*use amp='bf16'"):
        reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp='fp16')
    learn = _with_mixin(reid_learner(tiny_dls, 'bot', backbone='resnet18', pretrained=False, amp=False, metrics=[]))
    with pytest.raises(ValueError, match=r"amp='fp16' on this CPU"): learn.to_amp('fp16')
    with pytest.raises(ValueError, match=r"^to_fp16: amp='fp16' on this CPU"): learn.to_fp16()
    assert learn.train_precision() == ('fp32', 'no mixed precision')   # nothing was installed

def test_fp16_on_a_cpu_with_native_fp16_runs_fp16(monkeypatch):
    monkeypatch.setattr(callbacks, 'cpu_has_native_fp16', lambda: True)
    learn = _with_mixin(synth_learner())
    learn.to_fp16()
    assert learn.train_precision() == ('fp16', "amp='fp16' on a CPU with native fp16")
    assert _probe_fit(learn) == {(True, torch.float16)}
    assert learn.train_precision()[0] == 'fp16'

def test_to_bf16_runs_bf16_on_the_cpu(monkeypatch):
    monkeypatch.setenv(ENV, '1')
    learn = _with_mixin(synth_learner()).to_bf16()
    assert _probe_fit(learn) == {(True, torch.bfloat16)} and learn.train_precision()[0] == 'bf16'
    learn.to_fp32()                              # fastai's to_fp32 removes it
    assert _probe_fit(learn) == {(False, torch.bfloat16)} and learn.train_precision()[0] == 'fp32'

def test_fastais_own_methods_are_unchanged():
    "The package adds no `to_fp16` / `to_bf16` of its own to fastai's `Learner`"
    import fastreid_vehicle.all
    for m in ('to_fp16', 'to_bf16', 'to_fp32'): assert getattr(Learner, m).__module__ == 'fastai.callback.fp16', m
    assert {'to_fp16', 'to_bf16'} <= set(vars(ReidPrecisionMixin))

def test_a_request_the_device_cannot_run_trains_fp32_with_a_warning(monkeypatch):
    "fp16 asked on another machine (a GPU learner loaded on this CPU): `train_precision` says so, `fit` warns, trains fp32"
    monkeypatch.setattr(callbacks, 'cpu_has_native_fp16', lambda: False)
    learn = synth_learner()
    learn.add_cb(ReidMixedPrecision('fp16'))    # what a learner built on CUDA with amp='fp16' carries
    p, why = learn.train_precision()
    assert p == 'fp32' and 'falls back to fp32' in why
    with pytest.warns(UserWarning, match=r"amp='fp16' on this CPU.*Training in fp32"): seen = _probe_fit(learn)
    assert seen == {(False, torch.bfloat16)} and learn.train_precision()[0] == 'fp32'
