"""Public sequential data sets: MovieLens-100K (with titles) and Adapter4Rec's Amazon histories.

These read files the user downloads; keras_mdr ships no third-party data
(mind each data set's licence).

The MovieLens transfer split (`movielens_transfer`) makes a source and a
target that share neither users nor items:

- items: a movie with at least one of the genres in `SOURCE_GENRES` (Action,
  Adventure, Crime, Film-Noir, Horror, Mystery, Sci-Fi, Thriller, War,
  Western) belongs to the source catalogue; every other movie (only
  Animation, Children's, Comedy, Documentary, Drama, Fantasy, Musical,
  Romance or unknown) to the target catalogue;
- users: `user_id % 3 == 0` are target users, the others source users;
- source = source users' ratings of source movies, target = target users'
  ratings of target movies; within each, users with fewer than 5 ratings
  are dropped, and the catalogue is the movies still rated.

Every rating counts as an interaction (implicit feedback, as in SASRec's and
RecBole's MovieLens setups); ties in time keep the order of `u.data`.
"""

import os

import numpy as np
import pandas as pd

from keras_mdr.data.sequences import sequences

SOURCE_GENRES = (
    "Action", "Adventure", "Crime", "Film-Noir", "Horror", "Mystery", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
TARGET_USER_MODULUS = 3


def _file(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; pass the folder that holds the original {name}")
    return path


def movielens_items(raw_dir):
    """The `u.item` table: `item_id`, `title` (with the year), `genres` (list), `text`.

    `text` is what a text encoder reads: the title, then the genres
    (`"Toy Story (1995) | Animation, Children's, Comedy"`).
    """
    genres = [line.split("|")[0] for line in open(_file(raw_dir, "u.genre"), encoding="latin-1") if line.strip()]
    table = pd.read_csv(_file(raw_dir, "u.item"), sep="|", header=None, encoding="latin-1")
    flags = table.iloc[:, 5 : 5 + len(genres)].to_numpy().astype(bool)
    names = [[g for g, on in zip(genres, row) if on] for row in flags]
    return pd.DataFrame(
        {
            "item_id": table[0].astype(str),
            "title": table[1].fillna("unknown").astype(str),
            "genres": names,
            "text": [f"{t} | {', '.join(g)}" for t, g in zip(table[1].fillna("unknown"), names)],
        }
    )


def _ratings(raw_dir):
    frame = pd.read_csv(_file(raw_dir, "u.data"), sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"])
    return frame.astype({"user_id": str, "item_id": str})


def movielens_sequences(raw_dir, min_length=5):
    """All of MovieLens-100K as user histories over titled movies (`raw_dir` holds `u.data`, `u.item`, `u.genre`)."""
    return sequences(_ratings(raw_dir), movielens_items(raw_dir), text="text", min_length=min_length, name="ml-100k")


def movielens_transfer(raw_dir, min_length=5):
    """The MovieLens-100K source -> target split of the module docstring: `(source, target)`."""
    items = movielens_items(raw_dir)
    ratings = _ratings(raw_dir)
    source_items = set(items["item_id"][[bool(set(g) & set(SOURCE_GENRES)) for g in items["genres"]]])
    target_user = ratings["user_id"].astype(int) % TARGET_USER_MODULUS == 0
    source_item = ratings["item_id"].isin(source_items)
    source = sequences(ratings[~target_user & source_item], items, text="text", min_length=min_length, name="ml-100k-source")
    target = sequences(ratings[target_user & ~source_item], items, text="text", min_length=min_length, name="ml-100k-target")
    return source, target


def amazon_sequences(directory, min_length=5):
    """Adapter4Rec's Amazon histories (ids only): `amazon_2w_users.tsv` (`user<TAB>item item ...`).

    Lines are in time order upstream; a user's repeated items are kept once
    (first occurrence), see `sequences`.
    """
    users, items = [], []
    with open(_file(directory, "amazon_2w_users.tsv")) as f:
        for line in f:
            user, _, history = line.rstrip("\n").partition("\t")
            history = history.split()
            users.extend([user] * len(history))
            items.extend(history)
    frame = pd.DataFrame({"user_id": users, "item_id": np.asarray(items, dtype=object)})
    return sequences(frame, timestamp=None, min_length=min_length, name="amazon")
