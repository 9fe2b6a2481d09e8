"""Building blocks: routing by domain, experts, gates, normalisation, embeddings, adapters."""

from keras_mdr.layers.conditional_experts import ConditionalExperts
from keras_mdr.layers.customized_gate_control import CustomizedGateControl
from keras_mdr.layers.domain_dense import DomainDense
from keras_mdr.layers.domain_mlp import DomainMLP
from keras_mdr.layers.domain_normalization import DomainNormalization
from keras_mdr.layers.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.expert_bank import ExpertBank
from keras_mdr.layers.expert_fusion import ExpertFusion
from keras_mdr.layers.expert_gate import ExpertGate
from keras_mdr.layers.expert_mixture import ExpertMixture
from keras_mdr.layers.factorization_machine import FactorizationMachine
from keras_mdr.layers.feature_embedding import FeatureEmbedding, embedding_fields
from keras_mdr.layers.hyper_adapter import HyperAdapter
from keras_mdr.layers.hyper_network import HyperNetwork
from keras_mdr.layers.mlp_block import MLPBlock
from keras_mdr.layers.noisy_top_k_gate import NoisyTopKGate
from keras_mdr.layers.routing_losses import domain_expert_mutual_information, load_balancing_loss
from keras_mdr.layers.star_dense import StarDense
from keras_mdr.layers.stop_gradient import StopGradient
from keras_mdr.layers.vector_cross import VectorCross
