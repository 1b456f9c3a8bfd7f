"""The first synthetic world (`--data synthetic-v1:SIZE[:SEED]`), frozen so that sweeps run on it reproduce.

Its output is bit-identical to what `synthetic:*` generated before world v2 (tests/model/datasets/
test_synthetic_v1.py pins checksums); do not change it. Sizes, domains, fields and the click-rate
calibration are shared with world v2 (model/datasets/synthetic.py).

The planted model (all draws from one generator seeded by `seed`):
  * Users u have an age x gender group g(u); their K=8-dim preference p_u = a_g + 0.7 * noise.
  * Items i have a category c(i); their K-dim profile v_i = b_c + 0.7 * noise. Item popularity is
    Zipf-like (exponent 1.05), user activity log-normal; authors carry a bias.
  * Domains share the first 4 preference components and disagree in sign on the last 4
    (SIGNS below): the same user likes an item in one domain and dislikes it in another, which is
    the preference conflict the paper is about. The big domain S1 sees all signs +, so a model
    that ignores domains learns S1's taste and gets the tail domains' conflicting part wrong.
  * logit = base_d + 0.4 * popularity_i + user_bias_u + author_bias + 1.2 * sum_k s_dk p_uk v_ik / sqrt(K),
    label ~ Bernoulli(sigmoid(logit)); base_d is set so the click rate is about 0.3 in every domain.
  * Domain shares follow KuaiRand-1K's Table 1 (S1 67 %, S0 21 %, S4 7.7 %, S2 3.5 %, S6 1.6 %).
The true click probability is kept as `truth`, so the Bayes-optimal AUC/gAUC is reported next to
the model's (metric names `bayesauc`, `bayesgauc`).
"""
from __future__ import annotations

import math

import torch

from model.data import MultiDomainData, random_split
from model.datasets.synthetic import (DOMAIN_NAMES, DOMAIN_SHARES, ITEM_FIELDS, SIZES, USER_FIELDS,
                                      calibrated_offsets)

NUM_LATENT = 8
# Sign of each preference component per domain: columns 0-3 shared, 4-7 in conflict.
SIGNS = (
    (1, 1, 1, 1, 1, -1, 1, -1),   # S0
    (1, 1, 1, 1, 1, 1, 1, 1),     # S1
    (1, 1, 1, 1, -1, -1, 1, 1),   # S2
    (1, 1, 1, 1, -1, 1, -1, 1),   # S4
    (1, 1, 1, 1, -1, -1, -1, -1),  # S6
)


def make_synthetic_v1(size: str = "tiny", seed: int = 0) -> MultiDomainData:
    """Generate the named size deterministically from seed (same seed, same data)."""
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; valid: {sorted(SIZES)}")
    spec = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    randint = lambda high, n: torch.randint(high, (n,), generator=gen)  # noqa: E731
    U, I, N, K = spec.num_users, spec.num_items, spec.num_rows, NUM_LATENT

    # Users: attributes, then a preference vector built from the (age, gender) group.
    user_attr = {name: randint(vocab, U) for name, vocab in USER_FIELDS.items()}
    group = user_attr["user_age"] * 2 + user_attr["user_gender"]
    user_pref = randn(12, K)[group] + 0.7 * randn(U, K)  # (U, K)
    user_bias = 0.3 * randn(U)
    user_weight = torch.exp(randn(U))  # log-normal activity
    user_attr["user_activity"] = torch.bucketize(user_weight.log(), torch.tensor([-1.0, -0.3, 0.3, 1.0]))

    # Items: category-driven profile, author bias, Zipf popularity.
    category = randint(spec.num_categories, I)
    item_profile = randn(spec.num_categories, K)[category] + 0.7 * randn(I, K)  # (I, K)
    author = randint(spec.num_authors, I)
    author_bias = 0.3 * randn(spec.num_authors)
    item_weight = 1.0 / torch.arange(1, I + 1, dtype=torch.float64) ** 1.05
    item_weight = item_weight[torch.randperm(I, generator=gen)]  # popularity independent of id
    popularity = (item_weight.log() - item_weight.log().mean()) / item_weight.log().std()
    item_attr = {"item_author": author, "item_category": category,
                 "item_tag": category * 4 + randint(4, I)}
    item_vocab = {"item_author": spec.num_authors, "item_category": spec.num_categories,
                  "item_tag": spec.num_categories * 4}
    for name, vocab in ITEM_FIELDS.items():
        if vocab:
            item_attr[name], item_vocab[name] = randint(vocab, I), vocab

    # Impressions: domain by KuaiRand's shares, user by activity, item by popularity.
    shares = torch.tensor(DOMAIN_SHARES, dtype=torch.float64)
    domains = torch.multinomial(shares / shares.sum(), N, replacement=True, generator=gen)
    users = torch.multinomial(user_weight.double(), N, replacement=True, generator=gen)
    items = torch.multinomial(item_weight, N, replacement=True, generator=gen)

    signs = torch.tensor(SIGNS, dtype=torch.float32)[domains]  # (N, K)
    affinity = (signs * user_pref[users] * item_profile[items]).sum(1) / math.sqrt(K)  # (N,)
    logit = 0.4 * popularity[items].float() + user_bias[users] + author_bias[author[items]] + 1.2 * affinity
    logit = logit + calibrated_offsets(logit, domains, len(DOMAIN_NAMES), gen)[domains]
    truth = torch.sigmoid(logit)
    labels = torch.bernoulli(truth, generator=gen)

    columns = {"user_id": (users, U), "item_id": (items, I), "domain_id": (domains, len(DOMAIN_NAMES))}
    columns |= {name: (attr[users], USER_FIELDS[name]) for name, attr in user_attr.items()}
    columns |= {name: (attr[items], item_vocab[name]) for name, attr in item_attr.items()}
    return MultiDomainData(
        name=f"synthetic-v1:{size}",
        features=torch.stack([col for col, _ in columns.values()], dim=1),  # (N, F)
        labels=labels.float(), domains=domains, users=users, split=random_split(N, seed),
        field_names=tuple(columns), vocab_sizes=tuple(v for _, v in columns.values()),
        domain_names=DOMAIN_NAMES, truth=truth.float(),
    ).validate()
