"""Data in: in-memory columns, splits and the built-in synthetic data set."""

from keras_mdr.data.columns import prepare_columns
from keras_mdr.data.readers import read_table
from keras_mdr.data.splits import random_split
from keras_mdr.data.synthetic import synthetic
from keras_mdr.data.tabular import TabularData
