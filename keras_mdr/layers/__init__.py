"""Building blocks: routing by domain, experts, gates, normalisation, embeddings."""

from keras_mdr.layers.conditional_experts import ConditionalExperts
from keras_mdr.layers.domain_dense import DomainDense
from keras_mdr.layers.domain_mlp import DomainMLP
from keras_mdr.layers.domain_normalization import DomainNormalization
from keras_mdr.layers.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.expert_bank import ExpertBank
from keras_mdr.layers.expert_gate import ExpertGate
from keras_mdr.layers.feature_embedding import FeatureEmbedding, embedding_fields
from keras_mdr.layers.mlp_block import MLPBlock
from keras_mdr.layers.noisy_top_k_gate import NoisyTopKGate
from keras_mdr.layers.routing_losses import domain_expert_mutual_information, load_balancing_loss
