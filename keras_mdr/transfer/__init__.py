"""A new domain on a trained model: `add_domain`, then train only what it left trainable.

    new_model = km.transfer.add_domain(model, "d3", data=new_rows, method="adapter")
    km.training.train(new_model, new_train, new_valid, epochs=5)
    new_model.trainable_report()
"""

from keras_mdr.models.transfer_plan import FROZEN_METHODS, METHODS
from keras_mdr.transfer.new_domain import add_domain, load_source_model
