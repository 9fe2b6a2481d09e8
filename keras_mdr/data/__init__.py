"""Data in: in-memory columns, files streamed through tf.data, splits and the built-in synthetic data set."""

from keras_mdr.data import public
from keras_mdr.data.columns import prepare_columns
from keras_mdr.data.files import data_files, file_dataset, read_files, write_tfrecords
from keras_mdr.data.readers import read_table
from keras_mdr.data.splits import random_split
from keras_mdr.data.synthetic import synthetic
from keras_mdr.data.tabular import TabularData
from keras_mdr.data.public_sequences import amazon_sequences, movielens_sequences, movielens_transfer
from keras_mdr.data.sequences import SequenceData, sequences
from keras_mdr.data.synthetic_sequences import synthetic_sequences, synthetic_transfer
