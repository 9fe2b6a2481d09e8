"""User histories for TransRec: building, leave-one-out splits, windows, the public transfer split, bad input."""

import numpy as np
import pandas as pd
import pytest
from test_public_data import _path  # shared data, skipped when absent

import keras_mdr as km


def _tables():
    interactions = pd.DataFrame(
        {
            "user_id": ["u1"] * 6 + ["u2"] * 3 + ["u3"] * 2,
            "item_id": ["c", "a", "b", "a", "d", "e", "a", "b", "c", "a", "b"],
            "timestamp": [3, 1, 2, 4, 4, 5, 1, 2, 3, 1, 2],
        }
    )
    items = pd.DataFrame({"item_id": ["a", "b", "c", "d", "e", "f"], "title": ["A", "B", "C", "D", "E", "F"]})
    return interactions, items


def test_sequences_sort_by_time_keep_first_occurrences_and_drop_short_users():
    interactions, items = _tables()
    data = km.data.sequences(interactions, items, min_length=3)
    assert data.user_ids.tolist() == ["u1", "u2"]  # u3 has 2 items
    assert data.item_ids.tolist() == ["a", "b", "c", "d", "e"]  # f is never interacted with
    assert data.item_texts.tolist() == ["A", "B", "C", "D", "E"]
    # u1: a(1) b(2) c(3) a(4, a repeat: dropped) d(4, a tie: table order) e(5)
    assert data.sequences[0].tolist() == [1, 2, 3, 4, 5]
    assert data.summary() == {"users": 2, "items": 5, "interactions": 8, "mean_length": 4.0}


def test_leave_one_out_uses_the_last_item_for_test_and_the_one_before_for_validation():
    data = km.data.sequences(*_tables(), min_length=3)
    history, target, seen = data.evaluation("test", max_length=3)
    assert target.tolist() == [5, 3]
    assert history.tolist() == [[2, 3, 4], [0, 1, 2]]  # the most recent 3 before the target, left-padded
    assert seen.tolist() == [[1, 2, 3, 4], [1, 2, 0, 0]]  # everything before the target, for masking
    history, target, _ = data.evaluation("valid", max_length=3)
    assert target.tolist() == [4, 2] and history.tolist() == [[1, 2, 3], [0, 0, 1]]


def test_training_windows_use_only_the_training_part():
    data = km.data.SequenceData(["a", "b", "c", "d", "e", "f", "g"], None, ["u"], [[1, 2, 3, 4, 5, 6, 7]])
    # training part 1..5 (6 validates, 7 tests)
    assert data.training_windows(max_length=2, windows="last").tolist() == [[3, 4, 5]]
    windows = data.training_windows(max_length=2, windows="all")
    assert windows.tolist() == [[3, 4, 5], [1, 2, 3]]  # overlapping by one: every transition once
    assert data.training_windows(max_length=8).tolist() == [[0, 0, 0, 0, 1, 2, 3, 4, 5]]


def test_synthetic_transfer_has_new_users_and_new_items_with_titles():
    source, target = km.data.synthetic_transfer(source_users=40, target_users=20, num_items=40)
    assert not set(source.item_ids) & set(target.item_ids)
    assert not set(source.user_ids) & set(target.user_ids)
    assert all(len(t) > 0 for t in target.item_texts)
    again, _ = km.data.synthetic_transfer(source_users=40, target_users=20, num_items=40)
    assert [s.tolist() for s in again.sequences] == [s.tolist() for s in source.sequences]


def test_movielens_transfer_split_has_disjoint_users_and_items_split_by_genre():
    raw = _path("ml-100k/raw")
    source, target = km.data.movielens_transfer(raw)
    assert not set(source.item_ids) & set(target.item_ids)
    assert not set(source.user_ids) & set(target.user_ids)
    assert all(int(u) % 3 == 0 for u in target.user_ids) and all(int(u) % 3 for u in source.user_ids)
    source_genres = set(km.data.public_sequences.SOURCE_GENRES)
    items = km.data.public_sequences.movielens_items(raw).set_index("item_id")
    assert all(set(items.loc[i, "genres"]) & source_genres for i in source.item_ids)
    assert not any(set(items.loc[i, "genres"]) & source_genres for i in target.item_ids)
    assert source.summary() == {"users": 627, "items": 682, "interactions": 36655, "mean_length": 58.46}
    assert target.summary() == {"users": 307, "items": 878, "interactions": 15797, "mean_length": 51.46}


def test_amazon_histories_are_read_in_order_without_repeats():
    data = km.data.amazon_sequences(_path("amazon-seq"))
    assert data.item_texts is None
    assert all(len(np.unique(s)) == len(s) for s in data.sequences[:500])
    assert min(len(s) for s in data.sequences) >= 5


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda i, t: (i.drop(columns="timestamp"), t), "missing timestamp column 'timestamp'"),
        (lambda i, t: (i, t[t.item_id != "d"]), "no row in the item table, e.g. 'd'"),
        (lambda i, t: (i, t.assign(title=["A", "B", "", "D", "E", "F"])), "empty \\(or blank\\) text, e.g. item 'c'"),
        (lambda i, t: (i, t.assign(title=["A", "B", None, "D", "E", "F"])), "empty \\(or blank\\) text, e.g. item 'c'"),
        (lambda i, t: (i, pd.concat([t, t.head(1)])), "item 'a' has more than one row"),
        (lambda i, t: (i[i.user_id == "u3"], t), "no user has 3 or more interactions"),
    ],
)
def test_bad_tables_get_errors_that_name_the_problem(change, message):
    interactions, items = change(*_tables())
    with pytest.raises(ValueError, match=message):
        km.data.sequences(interactions, items, min_length=3)


def test_a_history_too_short_for_leave_one_out_is_an_error():
    with pytest.raises(ValueError, match="user 'u' has 2 items; leave-one-out needs at least 3"):
        km.data.SequenceData(["a", "b"], None, ["u"], [[1, 2]])
    with pytest.raises(ValueError, match="user 'v' has 0 items; leave-one-out needs at least 3"):
        km.data.SequenceData(["a", "b", "c"], None, ["u", "v"], [[1, 2, 3], []])
    with pytest.raises(ValueError, match="min_length must be >= 3"):
        km.data.sequences(*_tables(), min_length=2)


def test_an_item_without_text_is_an_error_not_an_empty_title():
    with pytest.raises(ValueError, match=r"1 items have an empty \(or blank\) text, e.g. item 'b'"):
        km.data.SequenceData(["a", "b", "c"], ["A", "  ", "C"], ["u"], [[1, 2, 3]])
    with pytest.raises(ValueError, match="2 item texts for 3 items"):
        km.data.SequenceData(["a", "b", "c"], ["A", "B"], ["u"], [[1, 2, 3]])


def test_popularity_baseline_ranks_by_training_counts_with_the_history_masked():
    from keras_mdr.transrec import popularity_ranking

    data = km.data.SequenceData(
        list("abcdef"), None, ["u1", "u2", "u3"], [[1, 2, 3, 4, 5], [1, 2, 4, 5, 6], [2, 1, 6, 3, 4]]
    )
    # Training counts: a 3, b 3, c 1, d 1, f 1, e 0. Test ranks after masking each history: u1 e
    # behind f (1), u2 f behind c (equal count, lower index first: 1), u3 d first (0).
    assert popularity_ranking(data, k=1) == {"hr@1": pytest.approx(1 / 3), "ndcg@1": pytest.approx(1 / 3), "users": 3}
    expected = (2 / np.log2(3) + 1) / 3
    assert popularity_ranking(data, k=2) == {"hr@2": 1.0, "ndcg@2": pytest.approx(expected), "users": 3}

    data = km.data.synthetic_sequences(num_users=40, num_items=30, seed=1)
    counts = np.bincount(np.concatenate([s[:-2] for s in data.sequences]), minlength=31)
    ranks = []
    for seq in data.sequences:  # naive: a Python sort per user
        order = sorted((i for i in range(1, 31) if i not in set(seq[:-2].tolist() + [seq[-2]])), key=lambda i: (-counts[i], i))
        ranks.append(order.index(seq[-1]))
    ranks = np.array(ranks)
    got = popularity_ranking(data, k=10)
    assert got["hr@10"] == pytest.approx(np.mean(ranks < 10))
    assert got["ndcg@10"] == pytest.approx(np.mean((ranks < 10) / np.log2(ranks + 2)))
