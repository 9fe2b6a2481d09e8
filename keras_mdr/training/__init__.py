"""Losses, metrics and training loops for keras_mdr models."""

from keras_mdr.training.callbacks import ResumableEarlyStopping
from keras_mdr.training.cluster_assignment import cluster_assignment
from keras_mdr.training.expert_utilization import (
    ExpertUtilizationReport,
    expert_utilization,
    plot_expert_utilization,
    report_expert_utilization,
)
from keras_mdr.training.metrics import TaskMetrics, binary_logloss
from keras_mdr.training.progress import ProgressLogger
from keras_mdr.training.report import format_report
from keras_mdr.training.tensorboard import ExpertUtilizationImages, tensorboard_callbacks
from keras_mdr.training.trainer import train
