"""Fine-tuning (Toolformer §4): `train_on(cfg, lm, data_spec, out_dir)` on C* or a corpus, or `train(cfg, model,
train_batches, eval_batches, out_dir)` on any resumable batches."""

from jtoolformer.train.batches import BATCH_DTYPES, ResumableIterator
from jtoolformer.train.cli import add_train_command
from jtoolformer.train.config import TrainConfig, load_train_config
from jtoolformer.train.export import export_checkpoint
from jtoolformer.train.loop import TrainResult, evaluate, train, train_on
from jtoolformer.train.metrics import read_metrics

__all__ = ["BATCH_DTYPES", "ResumableIterator", "TrainConfig", "TrainResult", "add_train_command", "evaluate",
           "export_checkpoint", "load_train_config", "read_metrics", "train", "train_on"]
