"""One optimizer for the embedding tables and another for every other variable."""

import keras

from keras_mdr.api_export import km_export


def is_table(variable):
    """Whether `variable` is an embedding table: the `embeddings` of a `keras.layers.Embedding`.

    Its gradient reaches the optimizer sparse (the rows of the batch); every
    other variable's is dense.
    """
    return variable.path.rsplit("/", 1)[-1] == "embeddings"


@km_export("keras_mdr.optimizers.SplitOptimizer")
class SplitOptimizer(keras.optimizers.Optimizer):
    """Applies `tables` to the embedding tables and `rest` to every other variable.

    Sparse optimizers suit big tables (Adagrad or SGD leave the rows absent
    from a batch as they are, and adapt to each row's own gradient history)
    while the towers and experts train best with Adam. Each inner optimizer
    keeps its own state, learning rate and step count; this one counts the
    steps too (`iterations`), and its `learning_rate` is that of `rest`, so
    that a learning-rate callback acts on the towers. A table is a variable
    named `embeddings` (`keras.layers.Embedding`'s, as every table of the zoo).

    Args:
        tables: the optimizer of the embedding tables.
        rest: the optimizer of every other variable.

    Example:

    >>> optimizer = km.optimizers.SplitOptimizer(keras.optimizers.Adagrad(0.05), keras.optimizers.Adam(1e-3))
    >>> model.compile(optimizer=optimizer, jit_compile=True)
    """

    def __init__(self, tables, rest, name=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"SplitOptimizer takes no {', '.join(sorted(kwargs))}: set it on its `tables` or `rest` optimizer"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.tables = tables
        self.rest = rest

    def _split(self, items, variables):
        """`((tables' optimizer, its items), (rest's optimizer, its items))`, `items` paired with `variables`."""
        pairs = list(zip(items, variables))
        return tuple(
            (optimizer, [item for item, v in pairs if is_table(v) == table])
            for optimizer, table in ((self.tables, True), (self.rest, False))
        )

    def build(self, variables):
        for optimizer, owned in self._split(variables, variables):
            optimizer.build(owned)
        super().build(variables)

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        for optimizer, pairs in self._split(list(zip(grads, trainable_variables)), trainable_variables):
            if pairs:
                optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
        self._iterations.assign_add(1)

    @property
    def variables(self):
        return self._variables + self.tables.variables + self.rest.variables

    @property
    def learning_rate(self):
        return self.rest.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.rest.learning_rate = learning_rate

    def finalize_variable_values(self, var_list):
        for optimizer, owned in self._split(var_list, var_list):
            optimizer.finalize_variable_values(owned)

    def get_config(self):
        return {
            "name": self.name,
            "tables": keras.optimizers.serialize(self.tables),
            "rest": keras.optimizers.serialize(self.rest),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        tables = keras.optimizers.deserialize(config.pop("tables"), custom_objects=custom_objects)
        rest = keras.optimizers.deserialize(config.pop("rest"), custom_objects=custom_objects)
        return cls(tables, rest, **config)
