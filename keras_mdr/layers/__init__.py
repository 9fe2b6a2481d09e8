"""Building blocks, grouped by concept; every public layer is importable from here.

- `routing/`: per-domain dense layers, MLPs, norms and towers over a grouped matmul; a cluster router.
- `experts/`: expert banks, gates, mixtures, PLE gate control, sparse conditional experts, SAR-Net's
  scenario experts.
- `adapters/`: HAMUR's hyper adapters and parameter-efficient adapters for transfer.
- `sequence/`: the Transformer block (the adapters' host in sequential and text encoders), SAR-Net's
  attention over behaviours.
- `feature_interaction/`: factorization machine, cross layers.
- `embedding/`: embedding lookups of the preprocessed features.
- `personalization/`: PEPNet's Gate NU and its embedding and parameter gates.
- `pruning/`: AdaSparse's domain-pruned MLP.
- `meta/`: M2M's meta attention and meta towers, their weights generated from the domain.
- `core/`: small blocks the others share (MLP, stop-gradient, argument checks).
"""

from keras_mdr.layers.adapters.bottleneck_adapter import BottleneckAdapter
from keras_mdr.layers.adapters.compacter_adapter import CompacterAdapter
from keras_mdr.layers.adapters.domain_bottleneck_adapter import DomainBottleneckAdapter
from keras_mdr.layers.adapters.domain_lora import DomainLoRA
from keras_mdr.layers.adapters.hyper_adapter import HyperAdapter
from keras_mdr.layers.adapters.hyper_network import HyperNetwork
from keras_mdr.layers.adapters.k_adapter import KAdapter
from keras_mdr.layers.adapters.lora_dense import LoRADense, low_rank_delta
from keras_mdr.layers.adapters.parallel_adapter import ParallelAdapter
from keras_mdr.layers.adapters.phm_dense import PHMDense, PHMRule, phm_kernel
from keras_mdr.layers.adapters.placement import add_houlsby_adapters, add_pfeiffer_adapters
from keras_mdr.layers.adapters.soft_prompt import SoftPrompt
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.stop_gradient import StopGradient
from keras_mdr.layers.embedding.feature_embedding import FeatureEmbedding, concat_columns, embedding_fields
from keras_mdr.layers.experts.conditional_experts import ConditionalExperts
from keras_mdr.layers.experts.customized_gate_control import CustomizedGateControl
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.experts.expert_fusion import ExpertFusion
from keras_mdr.layers.experts.expert_gate import ExpertGate
from keras_mdr.layers.experts.expert_mixture import ExpertMixture
from keras_mdr.layers.experts.noisy_top_k_gate import NoisyTopKGate
from keras_mdr.layers.experts.scenario_expert_mixture import ScenarioExpertMixture
from keras_mdr.layers.experts.routing_losses import domain_expert_mutual_information, load_balancing_loss
from keras_mdr.layers.feature_interaction.factorization_machine import FactorizationMachine
from keras_mdr.layers.feature_interaction.vector_cross import VectorCross
from keras_mdr.layers.meta.scenario_meta_towers import ScenarioMetaTowers
from keras_mdr.layers.personalization.embedding_personalization import EmbeddingPersonalization
from keras_mdr.layers.personalization.gate_nu import GateNU
from keras_mdr.layers.personalization.parameter_personalization import ParameterPersonalizationGates
from keras_mdr.layers.pruning.domain_pruned_mlp import DomainPrunedMLP
from keras_mdr.layers.routing.cluster_router import ClusterRouter
from keras_mdr.layers.routing.domain_dense import DomainDense
from keras_mdr.layers.routing.domain_mlp import DomainMLP
from keras_mdr.layers.routing.domain_normalization import DomainNormalization
from keras_mdr.layers.routing.domain_task_towers import DomainTaskTowers
from keras_mdr.layers.routing.star_dense import StarDense
from keras_mdr.layers.sequence.scenario_behavior_attention import ScenarioBehaviorAttention
from keras_mdr.layers.sequence.transformer_block import TransformerBlock, attention_mask, masked_softmax
