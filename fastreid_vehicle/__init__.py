"""Modules:

- `fastreid_vehicle.data`: `reid_dblock(df).dataloaders(df)` is the one route from data to batches: a `ReidDataLoaders` with one image input, the targets `(y_id, y_color, y_type)`, the papers' augmentation with per-image random erasing and P x K training batches; `ReidDataLoaders.from_df`, `from_csv`, `from_folder` and `from_dblock` are built on it. The P x K sampler is also a `Callback` for any `Learner`.
- `fastreid_vehicle.distributed`: Train on several GPUs of one machine, on several machines, or in several CPU processes, with fastai's `learn.distrib_ctx()` (which runs on Hugging Face `accelerate`) under `torchrun` or `accelerate launch`: each process trains on whole P x K batches, and the re-id metrics are computed on the whole validation set gathered from all processes.
- `fastreid_vehicle.evaluation`: The library's one evaluation: `evaluate_features(items, feats, cfg)` turns the features of a query/gallery table into an `EvalResult`, under the dataset's protocol, with the test-time options of `EvalConfig` (camera centring, average query expansion, memory-aware k-reciprocal re-ranking on the CPU); `evaluate_learner` embeds first; `evaluate_protocol_tables` reports every test size from features computed once; trivial baselines; and a verification (TAR@FAR / ROC) curve.
- `fastreid_vehicle.learner`: `reid_learner` builds a `ReidLearner`, a fastai `Learner` whose `predict` embeds an image and `show_results` ranks the gallery, for any registered method (the baseline, MFG-Net, AttributeNet) with defaults from `fastreid_vehicle.config`; the papers' optimiser (AMSGrad) and step schedule. The training callbacks (precision, progress, loss components, ANet's second stage) are in `fastreid_vehicle.callbacks`.
- `fastreid_vehicle.runs`: Nothing trained is lost: a run folder records what the run is (`run.json`: config, seed, versions) and refuses to mix its outputs with another run's; a checkpoint with the optimiser and random states is written atomically after every epoch, and a killed run resumes from its last complete epoch at the same schedule position, with the same result as a run that was never interrupted."""

__version__ = "0.1.0"

import warnings as _warnings
# fastai / timm still decorate helpers with `torch.jit.script`, which torch 2.15 deprecates with a FutureWarning on
# import; it says nothing actionable to users of this library, so it is silenced here (that message only).
_warnings.filterwarnings('ignore', message=r'`torch\.jit\.script` is deprecated', category=FutureWarning)
