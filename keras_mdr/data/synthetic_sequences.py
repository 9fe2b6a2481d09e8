"""Seeded user histories over items with generated titles: the default data of TransRec.

Every item belongs to a topic and its title is made of that topic's words
(plus filler words and a year that carry no signal). A user prefers a few
topics and tends to stay on the topic of the previous item, so the next item
is predictable from the titles of the history: a text encoder can learn it,
and what it learns carries over to a second catalogue whose items are new but
whose titles use the same words (`synthetic_transfer`).
"""

import numpy as np
import pandas as pd

from keras_mdr.data.sequences import sequences

_TOPIC_WORDS = (
    ("galaxy", "rocket", "orbit", "planet", "comet", "alien", "nebula", "starship", "moon", "cosmos"),
    ("murder", "detective", "alibi", "clue", "suspect", "witness", "crime", "verdict", "motive", "case"),
    ("kitchen", "recipe", "baker", "spice", "harvest", "feast", "garden", "bread", "honey", "soup"),
    ("castle", "dragon", "wizard", "sword", "kingdom", "quest", "knight", "spell", "crown", "throne"),
    ("ocean", "island", "pirate", "harbor", "voyage", "storm", "sailor", "reef", "anchor", "tide"),
    ("love", "wedding", "heart", "kiss", "promise", "summer", "letters", "romance", "dance", "bride"),
    ("robot", "circuit", "machine", "code", "signal", "android", "network", "virus", "cyber", "engine"),
    ("war", "soldier", "battle", "general", "frontier", "siege", "army", "border", "rebel", "empire"),
    ("ghost", "haunted", "shadow", "curse", "midnight", "crypt", "witch", "graveyard", "terror", "blood"),
    ("school", "friends", "family", "summer", "holiday", "puppy", "birthday", "camp", "kids", "home"),
    ("money", "heist", "bank", "casino", "diamond", "vault", "fortune", "deal", "gamble", "gold"),
    ("mountain", "river", "forest", "desert", "wolf", "horse", "wild", "canyon", "trail", "winter"),
)
_FILLER_WORDS = ("the", "of", "a", "last", "great", "little", "new", "return", "night", "day", "secret", "story")
MAX_TOPICS = len(_TOPIC_WORDS)


def _catalogue(rng, num_items, num_topics, prefix):
    topics = rng.integers(0, num_topics, num_items)
    titles = []
    for topic in topics:
        words = list(rng.choice(_TOPIC_WORDS[topic], size=rng.integers(2, 4), replace=False))
        if rng.random() < 0.6:
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_FILLER_WORDS)))
        titles.append(" ".join(words).title() + f" ({int(rng.integers(1970, 2021))})")
    popularity = rng.zipf(1.6, num_items).clip(max=50).astype(float)
    ids = [f"{prefix}{i}" for i in range(num_items)]
    return pd.DataFrame({"item_id": ids, "title": titles}), topics, popularity


def _histories(rng, num_users, topics, popularity, num_topics, mean_length, stay, prefix):
    by_topic = [np.flatnonzero(topics == t) for t in range(num_topics)]
    weights = [popularity[items] / popularity[items].sum() if len(items) else None for items in by_topic]
    present = np.array([len(items) > 0 for items in by_topic], float)
    rows = []
    for u in range(num_users):
        preference = rng.dirichlet(np.full(num_topics, 0.3)) * present
        preference /= preference.sum()
        length = 5 + rng.poisson(max(mean_length - 5, 0))
        seen, topic = set(), int(rng.choice(num_topics, p=preference))
        for step in range(length):
            if step and rng.random() > stay:
                topic = int(rng.choice(num_topics, p=preference))
            for _ in range(10):
                item = int(rng.choice(by_topic[topic], p=weights[topic]))
                if item not in seen:
                    break
            else:
                continue
            seen.add(item)
            rows.append((f"{prefix}{u}", f"{prefix}{item}", step))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def synthetic_sequences(
    num_users=500, num_items=300, num_topics=8, mean_length=15, stay=0.7, seed=2024, prefix="i", name="synthetic"
):
    """Generates user histories over a catalogue of titled items.

    Args:
        num_users: users to generate (each gets 5 or more items).
        num_items: catalogue size.
        num_topics: topics in use (at most 12).
        mean_length: mean number of items per user.
        stay: probability that the next item keeps the previous item's topic.
        seed: equal seeds give equal data.
        prefix: prepended to user and item ids (`"i17"`).
        name: the data's name.

    Returns:
        A `SequenceData` with item texts (titles such as
        `"The Rocket Orbit (1994)"`).
    """
    if not 1 <= num_topics <= MAX_TOPICS:
        raise ValueError(f"num_topics must be in 1..{MAX_TOPICS}, got {num_topics}")
    if num_items < 20 or num_users < 1:
        raise ValueError(f"num_items must be >= 20 and num_users >= 1, got {num_items}, {num_users}")
    rng = np.random.default_rng(seed)
    items, topics, popularity = _catalogue(rng, num_items, num_topics, prefix)
    interactions = _histories(rng, num_users, topics, popularity, num_topics, mean_length, stay, prefix)
    return sequences(interactions, items, min_length=5, name=name)


def synthetic_transfer(source_users=600, target_users=150, num_items=300, seed=2024, **kwargs):
    """A source and a target data set for transfer: new users and new items, the same title words.

    Returns:
        `(source, target)` `SequenceData`s whose users and items are
        disjoint (ids `s...` and `t...`).
    """
    source = synthetic_sequences(source_users, num_items, seed=seed, prefix="s", name="source", **kwargs)
    target = synthetic_sequences(target_users, num_items, seed=seed + 1, prefix="t", name="target", **kwargs)
    return source, target
