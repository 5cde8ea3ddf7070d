"""Training: a model-agnostic Trainer (exact resume, EMA, AMP, DDP), pretraining and fine-tuning.

The Trainer itself works with any ``nn.Module``; only :func:`pretrain` builds a PET (:mod:`jetlab.model`).
"""

from .callbacks import Callback, EarlyStopping, History, LiveLossPlot, ProgressBar, TimeLimit
from .ema import ModelEMA
from .finetune import classifier_loss, fit_classifier, predict
from .precision import tf32_inference
from .pretrain import CPU_RECIPE, pretrain
from .resume import load_checkpoint, save_checkpoint
from .schedule import WarmupCosine, warmup_cosine_factor
from .trainer import Lion, Trainer

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "LiveLossPlot",
    "Lion",
    "ModelEMA",
    "ProgressBar",
    "TimeLimit",
    "Trainer",
    "WarmupCosine",
    "classifier_loss",
    "fit_classifier",
    "load_checkpoint",
    "predict",
    "CPU_RECIPE",
    "pretrain",
    "save_checkpoint",
    "tf32_inference",
    "warmup_cosine_factor",
]
