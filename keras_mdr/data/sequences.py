"""User histories for sequential recommenders: item sequences, a catalogue, leave-one-out splits.

`sequences(interactions, items)` turns an interactions table (user, item,
timestamp) and an item table (item, text) into a `SequenceData`: the
catalogue (item ids, their texts) and, per user, the chronological sequence
of item indices (`1..N`; 0 is padding). Splits are leave-one-out, as in
SASRec and Adapter4Rec: a user's last item is the test target, the second to
last the validation target, the rest trains.

Arrays handed to a model are **left-padded**: the most recent item is always
in the last column, so the user encoder reads its output there.
"""

import dataclasses

import numpy as np
import pandas as pd

from keras_mdr.data.columns import _require, to_frame

PADDING = 0
# Leave-one-out needs at least one training item, a validation and a test target.
MIN_SEQUENCE_LENGTH = 3
SPLITS = ("valid", "test")


def _left_pad(rows, width):
    """int32 `[len(rows), width]`: each row's last `width` values, right-aligned, 0 in front."""
    out = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        row = row[-width:] if width else row[:0]
        if len(row):
            out[i, width - len(row) :] = row
    return out


@dataclasses.dataclass
class SequenceData:
    """A catalogue and the users' item sequences.

    Attributes:
        item_ids: `str [N]`, the catalogue; item `item_ids[i]` has index
            `i + 1` in the sequences.
        item_texts: `str [N]` (the text of each item, e.g. a title) or `None`
            for an id-only data set.
        user_ids: `str [U]`.
        sequences: `U` int32 arrays of item indices in `1..N`, oldest first.
        name: a label for reports.
    """

    item_ids: np.ndarray
    item_texts: np.ndarray | None
    user_ids: np.ndarray
    sequences: list
    name: str = "sequences"

    def __post_init__(self):
        self.item_ids = np.asarray(self.item_ids, dtype=object).astype(str)
        if self.item_texts is not None:
            self.item_texts = np.asarray(self.item_texts, dtype=object).astype(str)
            if len(self.item_texts) != len(self.item_ids):
                raise ValueError(
                    f"{self.name}: {len(self.item_texts)} item texts for {len(self.item_ids)} items"
                )
            empty = np.flatnonzero(np.char.str_len(np.char.strip(self.item_texts.astype(str))) == 0)
            if len(empty):
                raise ValueError(
                    f"{self.name}: {len(empty)} items have an empty (or blank) text, e.g. item "
                    f"{str(self.item_ids[empty[0]])!r}; give every item a text or use an id-only data set"
                )
        self.user_ids = np.asarray(self.user_ids, dtype=object).astype(str)
        self.sequences = [np.asarray(s, np.int32) for s in self.sequences]
        if len(self.sequences) != len(self.user_ids):
            raise ValueError(f"{self.name}: {len(self.sequences)} sequences for {len(self.user_ids)} users")
        if len(set(self.item_ids.tolist())) != len(self.item_ids):
            raise ValueError(f"{self.name}: item ids are not unique")
        for user, seq in zip(self.user_ids, self.sequences):
            if len(seq) < MIN_SEQUENCE_LENGTH:
                raise ValueError(
                    f"{self.name}: user {str(user)!r} has {len(seq)} items; leave-one-out needs at least "
                    f"{MIN_SEQUENCE_LENGTH} (one to train on, a validation and a test target)"
                )
            if seq.min() < 1 or seq.max() > self.num_items:
                raise ValueError(f"{self.name}: user {str(user)!r} has item indices outside 1..{self.num_items}")

    @property
    def num_items(self):
        return len(self.item_ids)

    @property
    def num_users(self):
        return len(self.user_ids)

    @property
    def num_interactions(self):
        return int(sum(len(s) for s in self.sequences))

    @property
    def has_text(self):
        return self.item_texts is not None

    def summary(self):
        """`{users, items, interactions, mean_length}` for reports."""
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "mean_length": round(self.num_interactions / max(self.num_users, 1), 2),
        }

    def training_windows(self, max_length, windows="last"):
        """int32 `[W, max_length + 1]`, left-padded training sequences.

        Only each user's training part (the sequence without its last two
        items) is used. A window of `max_length + 1` items gives
        `max_length` next-item predictions (inputs `[:, :-1]`, targets
        `[:, 1:]`).

        Args:
            max_length: the model's maximum history length.
            windows: `"last"`: one window per user, the most recent
                `max_length + 1` training items (SASRec, Adapter4Rec);
                `"all"`: cover the whole training part with windows that
                overlap by one item, so every training transition is a
                target exactly once.
        """
        if windows not in ("last", "all"):
            raise ValueError(f"windows must be 'last' or 'all', got {windows!r}")
        rows = []
        for seq in self.sequences:
            train = seq[:-2]
            end = len(train)
            while end >= 2:
                rows.append(train[max(0, end - max_length - 1) : end])
                if windows == "last":
                    break
                end -= max_length
        return _left_pad(rows, max_length + 1)

    def evaluation(self, split, max_length):
        """The leave-one-out evaluation arrays of `split` (`"valid"` or `"test"`).

        Returns:
            `(history [U, max_length], target [U], seen [U, H])`, int32: the
            left-padded model input (the most recent `max_length` items
            before the target), the target item and every item the user saw
            before the target (right-padded with 0), which full ranking
            masks.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        cut = 2 if split == "valid" else 1
        before = [seq[:-cut] for seq in self.sequences]
        target = np.array([seq[-cut] for seq in self.sequences], np.int32)
        width = max(len(b) for b in before)
        seen = np.zeros((len(before), width), np.int32)
        for i, b in enumerate(before):
            seen[i, : len(b)] = b
        return _left_pad(before, max_length), target, seen

    def subset(self, users=None, items=None, name=None, min_length=MIN_SEQUENCE_LENGTH):
        """The data restricted to some users and some items.

        Args:
            users: boolean mask over `user_ids` (all when `None`).
            items: boolean mask over `item_ids` (all when `None`); sequences
                keep only these items and the catalogue shrinks to the items
                that still occur.
            name: the new data's name.
            min_length: users left with fewer items are dropped.
        """
        users = np.ones(self.num_users, bool) if users is None else np.asarray(users, bool)
        keep_item = np.ones(self.num_items + 1, bool) if items is None else np.r_[False, np.asarray(items, bool)]
        kept = []
        for user, seq in zip(self.user_ids[users], np.asarray(self.sequences, dtype=object)[users]):
            seq = seq[keep_item[seq]]
            if len(seq) >= min_length:
                kept.append((user, seq))
        if not kept:
            raise ValueError(f"{name or self.name}: no user has {min_length} or more items in the subset")
        used = np.unique(np.concatenate([s for _, s in kept]))
        remap = np.zeros(self.num_items + 1, np.int32)
        remap[used] = np.arange(1, len(used) + 1, dtype=np.int32)
        return SequenceData(
            item_ids=self.item_ids[used - 1],
            item_texts=None if self.item_texts is None else self.item_texts[used - 1],
            user_ids=[u for u, _ in kept],
            sequences=[remap[s] for _, s in kept],
            name=name or self.name,
        )


def sequences(
    interactions,
    items=None,
    *,
    user="user_id",
    item="item_id",
    timestamp="timestamp",
    text="title",
    min_length=5,
    name="sequences",
):
    """User histories from an interactions table and an item-text table.

    Each user's interactions are sorted by `timestamp`; equal timestamps keep
    the order of the table. A user's later interactions with an item already
    in their history are dropped: full ranking masks the history, so a
    repeated target could never be ranked. Users with fewer than `min_length` interactions
    are dropped (Adapter4Rec keeps users with 5 or more). The catalogue is the
    set of items that occur in the kept interactions, in order of first
    appearance in `items` (or in the interactions, without `items`).

    Args:
        interactions: DataFrame (or dict of columns) with `user`, `item` and,
            unless `timestamp=None` (rows already in order), `timestamp`.
        items: DataFrame with `item` and `text`; `None` for ids only.
        user, item, timestamp, text: column names.
        min_length: the fewest interactions a user needs to be kept (>= 3).
        name: the data's name in messages and reports.

    Returns:
        A `SequenceData`.

    Raises:
        ValueError: a missing column, an interacted item without a row (or
            with an empty text) in `items`, duplicate item rows, or no user
            left.
    """
    if min_length < MIN_SEQUENCE_LENGTH:
        raise ValueError(f"min_length must be >= {MIN_SEQUENCE_LENGTH} (leave-one-out), got {min_length}")
    frame = to_frame(interactions, f"{name} interactions")
    for column, role in ((user, "user"), (item, "item")) + (((timestamp, "timestamp"),) if timestamp else ()):
        _require(frame, column, role, f"{name} interactions")
    frame = frame.assign(_user=frame[user].astype(str), _item=frame[item].astype(str))
    user_order = pd.unique(frame["_user"])
    if timestamp:
        if frame[timestamp].isna().any():
            raise ValueError(f"{name} interactions: column '{timestamp}' has missing values")
        frame = frame.sort_values([timestamp], kind="stable")
    frame = frame.drop_duplicates(["_user", "_item"], keep="first")
    counts = frame.groupby("_user", sort=False)["_item"].transform("size")
    frame = frame[counts >= min_length]
    if frame.empty:
        raise ValueError(f"{name}: no user has {min_length} or more interactions")

    texts = None
    if items is not None:
        table = to_frame(items, f"{name} items")
        _require(table, item, "item", f"{name} items")
        _require(table, text, "text", f"{name} items")
        table = table.assign(_item=table[item].astype(str))
        duplicated = table["_item"].duplicated()
        if duplicated.any():
            raise ValueError(f"{name} items: item {table['_item'][duplicated].iloc[0]!r} has more than one row")
        known = table.set_index("_item")[text]
        missing = ~frame["_item"].isin(known.index)
        if missing.any():
            raise ValueError(
                f"{name}: {frame['_item'][missing].nunique()} interacted items have no row in the item "
                f"table, e.g. {frame['_item'][missing].iloc[0]!r}; every item needs a text"
            )
        used = set(frame["_item"])
        catalogue = [i for i in table["_item"] if i in used]
        texts = known.loc[catalogue].fillna("").astype(str).str.strip().to_numpy()
    else:
        catalogue = list(pd.unique(frame["_item"]))
    index = {item_id: i + 1 for i, item_id in enumerate(catalogue)}
    frame = frame.assign(_index=frame["_item"].map(index).astype(np.int32))
    by_user = {u: s.to_numpy() for u, s in frame.groupby("_user", sort=False)["_index"]}
    user_ids = [u for u in user_order if u in by_user]
    return SequenceData(
        item_ids=np.asarray(catalogue, dtype=object),
        item_texts=texts,
        user_ids=user_ids,
        sequences=[by_user[u] for u in user_ids],
        name=name,
    )
