"""TransRec: a sequential recommender on item text, pre-trained on one catalogue and adapted to another.

    import keras_mdr as km
    source, target = km.data.synthetic_transfer()
    model = km.transrec.build_transrec(source, item_encoder="text")
    km.training.train(model, source, source, epochs=5, monitor="val_ndcg@10")
    adapted = km.transrec.transfer(model, target, method="houlsby")
    km.training.train(adapted, target, target, epochs=5, monitor="val_ndcg@10")
    km.transrec.full_ranking(adapted, target, split="test")     # {"hr@10", "ndcg@10", "users"}

Modules: `tokenizers` and `preprocessing` (TensorFlow-only, the `tf.data`
side), `encoders` (Keras layers), `model`, `build`, `transfer`, `evaluation`,
`export`.
"""

from keras_mdr.transrec.build import build_transrec, text_encoder_from_preset
from keras_mdr.transrec.encoders import IdItemEncoder, SASRecEncoder, TextItemEncoder
from keras_mdr.transrec.evaluation import FullRankingCallback, full_ranking, item_table, popularity_ranking
from keras_mdr.transrec.model import TransRec
from keras_mdr.transrec.tokenizers import TitleTokenizer, make_tokenizer
from keras_mdr.transrec.transfer import METHODS, trainable_report, transfer
from keras_mdr.transrec.export import export_transrec, recommend
