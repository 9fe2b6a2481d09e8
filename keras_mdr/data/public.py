"""Loaders for public multi-domain benchmark data, in the formats of Scenario-Wise-Rec.

These read files the user downloads (keras_mdr ships no third-party data; mind
each data set's licence). Each returns a `TabularData` whose specs are ready
for `build_model(..., data=frame)`.
"""

import numpy as np

from keras_mdr import specs
from keras_mdr.data.readers import read_table
from keras_mdr.data.tabular import TabularData

MOVIELENS_AGE_DOMAINS = {"age_1_18": [1, 18], "age_25": [25], "age_35_56": [35, 45, 50, 56]}
KUAIRAND_LEAKY_COLUMNS = ("play_time_ms", "duration_ms", "profile_stay_time", "comment_stay_time")


def movielens(path, tasks=("click",), embedding_dim=16):
    """MovieLens in the `ml-1m.csv` schema, domains by age group.

    Columns: `user_id,movie_id,rating,timestamp,title,genres,gender,age,
    occupation,zip`. Domains: ages {1, 18} / {25} / {35, 45, 50, 56}. Tasks:
    `click` = rating > 3 (the benchmark label) and, if asked for, `like` =
    rating == 5.

    Args:
        path: the CSV (or `.csv.gz`).
        tasks: a subset of `("click", "like")`.
        embedding_dim: width of every embedding.
    """
    unknown = sorted(set(tasks) - {"click", "like"})
    if unknown or not tasks:
        raise ValueError(f"movielens tasks must be among ('click', 'like'), got {list(tasks)}")
    features = [
        specs.SparseFeature("user_id", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("movie_id", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("gender", embedding_dim=embedding_dim),
        specs.SparseFeature("age", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("occupation", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("zip", embedding_dim=embedding_dim),
        specs.SequenceFeature("genres", separator="|", max_len=6, embedding_dim=embedding_dim),
    ]
    domain = specs.Domain("age", values=MOVIELENS_AGE_DOMAINS)
    frame = read_table(path, features, domain)
    frame["click"] = (frame["rating"] > 3).astype(np.int64)
    frame["like"] = (frame["rating"] == 5).astype(np.int64)
    return TabularData(frame, features, domain, [specs.Task(t) for t in tasks])


def ali_ccp(path, embedding_dim=16):
    """Ali-CCP as preprocessed by Scenario-Wise-Rec: domain column `301`.

    Labels `click` and `purchase` (purchase over all impressions, i.e. CTCVR;
    pass `Task("purchase", mask="click")` for CVR). Columns starting with `D`
    are numeric; every other column is an integer id.
    """
    frame = read_table(path)
    labels = ("click", "purchase")
    features = []
    for column in frame.columns:
        if column in labels or column == "301":
            continue
        if column.startswith("D"):
            features.append(specs.DenseFeature(column))
        else:
            features.append(specs.SparseFeature(column, dtype=specs.INT64, embedding_dim=embedding_dim))
    domain = specs.Domain("301", dtype=specs.INT64)
    return TabularData(frame, features, domain, [specs.Task(t) for t in labels])


def kuairand(path, embedding_dim=16):
    """KuaiRand with the domain column `tab`, label `is_click`.

    The post-exposure columns (play time, duration, stay times) leak the label
    and are dropped. Counts and register days are numeric; all other columns
    are integer ids (missing ids become -1).
    """
    frame = read_table(path).drop(columns=list(KUAIRAND_LEAKY_COLUMNS), errors="ignore")
    numeric = ("follow_user_num", "fans_user_num", "friend_user_num", "register_days")
    features = []
    for column in frame.columns:
        if column in ("is_click", "tab"):
            continue
        if column in numeric:
            frame[column] = np.log1p(frame[column].clip(lower=0).astype(np.float64))
            features.append(specs.DenseFeature(column))
        else:
            frame[column] = frame[column].fillna(-1).astype(np.int64)
            features.append(specs.SparseFeature(column, dtype=specs.INT64, embedding_dim=embedding_dim))
    domain = specs.Domain("tab", dtype=specs.INT64)
    return TabularData(frame, features, domain, [specs.Task("click", label="is_click")])


def douban(path, embedding_dim=16):
    """Douban with the domains book / music / movie; label `rating` (0/1)."""
    features = [
        specs.SparseFeature("user_id", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("item_id", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("living_place", embedding_dim=embedding_dim),
        specs.SparseFeature("join_year", embedding_dim=embedding_dim),
        specs.SparseFeature("time_bin", dtype=specs.INT64, embedding_dim=embedding_dim),
    ]
    domain = specs.Domain("domain", values=["book", "music", "movie"])
    frame = read_table(path, features[:3] + features[4:], domain)
    frame["join_year"] = frame["join_time"].astype(str).str[:4]
    return TabularData(frame, features, domain, [specs.Task("click", label="rating")])


def mind(path, embedding_dim=16):
    """MIND with the news category as the domain; label `label`."""
    features = [
        specs.SparseFeature("User_ID", embedding_dim=embedding_dim),
        specs.SparseFeature("News_ID", embedding_dim=embedding_dim),
        specs.SparseFeature("SubCategory", embedding_dim=embedding_dim),
    ]
    domain = specs.Domain("Category", dtype=specs.STRING)
    frame = read_table(path, features, domain)
    return TabularData(frame, features, domain, [specs.Task("click", label="label")])
