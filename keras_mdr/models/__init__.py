"""The model zoo. Importing a model's module registers it with `build_model`."""

from keras_mdr.models.multi_domain_model import MultiDomainModel, TaskProbabilities
from keras_mdr.models.registry import build_model, hyper_parameters, list_models, register_model
from keras_mdr.models.shared_bottom import SharedBottom
from keras_mdr.models.mmoe import MMoE
from keras_mdr.models.ple import PLE
from keras_mdr.models.star import STAR
from keras_mdr.models.hamur import HAMUR
from keras_mdr.models.cesaa import CESAA
from keras_mdr.models.m3oe import M3oE
from keras_mdr.models.epnet import EPNet
from keras_mdr.models.ppnet import PPNet
from keras_mdr.models.adaptdhm import AdaptDHM
from keras_mdr.models.adasparse import AdaSparse
from keras_mdr.models.m2m import M2M
from keras_mdr.models.sarnet import SARNet
