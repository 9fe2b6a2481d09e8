"""The built-in default data: a seeded multi-domain, multi-task generator.

Rows are (user, item, domain) impressions with two correlated tasks, click and
like (like is only observed on clicks). The structure is chosen so that a
multi-domain model has something to find that one shared tower cannot:

- domains are imbalanced (sizes fall geometrically, the first is largest);
- the user-item affinity is rotated per domain (`u A_d v`), items have a
  popularity of their own in each domain, category preferences and the
  effect of price and age differ (even in sign) by domain, and each domain
  has its own base rate;
- like shares part of click's logit and adds a taste for tags of its own.
"""

import numpy as np
import pandas as pd

from keras_mdr import specs
from keras_mdr.data.tabular import TabularData

_CATEGORIES = 12
_TAGS = 20


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def synthetic(
    num_rows=60_000,
    num_domains=3,
    num_users=2_000,
    num_items=1_000,
    seed=2022,
    embedding_dim=16,
):
    """Generates the synthetic data set and the specs that describe it.

    Args:
        num_rows: impressions to generate.
        num_domains: number of domains, named `d0`, `d1`, ...
        num_users, num_items: id space sizes.
        seed: the generator's seed; equal seeds give equal data.
        embedding_dim: embedding width of the returned categorical specs.

    Returns:
        `TabularData(frame, features, domain, tasks)`: a DataFrame with
        columns `user_id` (str), `item_id` (int64), `age`, `gender`,
        `category`, `price`, `tags` ("t3|t7"), `domain`, `click`, `like`;
        unadapted feature specs; the `Domain`; tasks click and like (like
        masked to clicked rows).
    """
    if num_domains < 1 or num_rows < 1:
        raise ValueError(f"num_rows and num_domains must be >= 1, got {num_rows}, {num_domains}")
    rng = np.random.default_rng(seed)
    k = 8

    users = rng.normal(size=(num_users, k)) / np.sqrt(k)
    items = rng.normal(size=(num_items, k)) / np.sqrt(k)
    user_age = rng.integers(16, 70, num_users)
    user_gender = rng.choice(np.array(["F", "M"]), num_users)
    item_category = rng.integers(0, _CATEGORIES, num_items)
    item_price = np.exp(rng.normal(3.0, 0.8, num_items))
    item_tags = [rng.choice(_TAGS, size=rng.integers(1, 4), replace=False) for _ in range(num_items)]
    user_tag_taste = rng.normal(0.0, 0.8, size=(num_users, _TAGS))

    rotations = np.eye(k) + 1.5 * rng.normal(size=(num_domains, k, k)) / np.sqrt(k)
    item_popularity = rng.normal(0.0, 1.0, size=(num_domains, num_items))
    category_preference = rng.normal(0.0, 0.9, size=(num_domains, _CATEGORIES))
    price_effect = np.linspace(-1.0, 1.0, num_domains) if num_domains > 1 else np.zeros(1)
    age_effect = rng.normal(0.0, 0.6, num_domains)
    base_rate = np.linspace(-0.4, -1.6, num_domains)

    domain_share = 0.55 ** np.arange(num_domains)
    domain = rng.choice(num_domains, size=num_rows, p=domain_share / domain_share.sum())
    user = rng.integers(0, num_users, num_rows)
    item = rng.integers(0, num_items, num_rows)

    affinity = np.einsum("nk,nkj,nj->n", users[user], rotations[domain], items[item])
    z_price = (np.log(item_price[item]) - 3.0) / 0.8
    z_age = (user_age[user] - 43.0) / 15.6
    click_logit = (
        base_rate[domain]
        + 3.0 * affinity
        + item_popularity[domain, item]
        + category_preference[domain, item_category[item]]
        + price_effect[domain] * z_price
        + age_effect[domain] * z_age
    )
    tag_taste = np.array([user_tag_taste[u, item_tags[i]].mean() for u, i in zip(user, item)])
    like_logit = 0.6 * click_logit + 1.2 * tag_taste - 0.3
    click = rng.random(num_rows) < _sigmoid(click_logit)
    like = click & (rng.random(num_rows) < _sigmoid(like_logit))

    frame = pd.DataFrame(
        {
            "user_id": np.char.add("u", user.astype(str)),
            "item_id": item.astype(np.int64),
            "age": user_age[user].astype(np.float32),
            "gender": user_gender[user],
            "category": np.char.add("c", item_category[item].astype(str)),
            "price": item_price[item].round(2).astype(np.float32),
            "tags": ["|".join(f"t{t}" for t in item_tags[i]) for i in item],
            "domain": np.char.add("d", domain.astype(str)),
            "click": click.astype(np.int64),
            "like": like.astype(np.int64),
        }
    )
    features = [
        specs.SparseFeature("user_id", embedding_dim=embedding_dim),
        specs.SparseFeature("item_id", dtype=specs.INT64, embedding_dim=embedding_dim),
        specs.SparseFeature("gender", embedding_dim=embedding_dim),
        specs.SparseFeature("category", embedding_dim=embedding_dim),
        specs.SequenceFeature("tags", separator="|", max_len=4, embedding_dim=embedding_dim),
        specs.DenseFeature("age"),
        specs.DenseFeature("price"),
    ]
    domain_spec = specs.Domain("domain", values=[f"d{i}" for i in range(num_domains)])
    tasks = [specs.Task("click"), specs.Task("like", mask="click")]
    return TabularData(frame, features, domain_spec, tasks)
