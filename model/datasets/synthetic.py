"""Synthetic KuaiRand-1K-shaped data, world v2: a planted click model in which the paper's mechanism
(tail domains starve domain-specific embeddings; users' tastes conflict across domains) can appear,
with the truth known. `--data synthetic:{tiny,small,kuairand}[:SEED]`; the first world, kept for old
sweeps, is `synthetic-v1:*` (model/datasets/synthetic_v1.py).

The model (defaults of WorldKnobs in brackets; S = 5 domains, heads S0, S1, tails S2, S4, S6).

Latent space R^K, K = g + h + 3t [4 + 2 + 3*2 = 12], in blocks of coordinates:
G (general, g dims), H (head, h dims), and T_s (t dims for each tail domain s); T = T_S2 u T_S4 u T_S6.

Per-domain preference subspaces, through known loadings W (S x K):
    W[s, k] = 1 on G for every domain;
    head s:  W[s, k] = 1 on H,  eps on T  [eps = head_use_of_tail = 0.1], 0 elsewhere;
    tail s:  W[s, k] = 1 on T_s,            0 elsewhere.
So each domain's preferences live in span{e_k : W[s, k] > 0} (rank g + h = 6 for heads, g + t = 6
for tails), and the tail domains use directions the head domains barely use: a representation that
keeps only what the head domains (88 % of rows) need loses exactly the T block.

Users u: group grp(u) = age x gender (12 groups); p_u = a_grp(u) + 0.7 xi_u, a, xi ~ N(0, I_K).
Items i: category c(i); v_i = b_c(i) + 0.7 zeta_i + mu 1_C, b, zeta ~ N(0, I_K) [mu = conflict_item_mean = 1].
Per-user sign conflict: f[u, s] ~ Bernoulli(rho_s) independently [rho = flip_rates =
(0.25, 0, 0.5, 0.25, 0.5) for S0, S1, S2, S4, S6], and on the conflict block C (the last c of the
general dims [c = conflict_dims = 2]) sigma[u, s, k] = -1 if f[u, s] = 1 and k in C, else +1.
Because items load on C with mean mu, a flip reverses not only which items a user prefers but
also the user's overall liking of the domain: a flipped user who clicks more than average in one
domain clicks less than average in the other, which is what a label-based conflict set sees.
    Affinity  A(u, i, s) = sum_k W[s, k] sigma[u, s, k] p_u[k] v_i[k] / sqrt(sum_k W[s, k]^2)
    logit     = beta_s + 0.4 pop_i + b_u + b_author(i) + gamma A(u, i, s)     [gamma = interaction = 1.5]
    label     ~ Bernoulli(sigmoid(logit)),  truth = sigmoid(logit)
b_u, b_author ~ N(0, 0.3^2); pop_i = standardised log of a Zipf(1.05) weight w_i; beta_s is set so
that every domain's click rate is 0.3 (bisection on a 200 k-row sample).

Ground truth for the Diversity Index: user u conflicts between domains i and j iff f[u, i] != f[u, j]
(on the block C their taste is reversed between the two domains), which happens at the known rate
    r_ij = rho_i (1 - rho_j) + rho_j (1 - rho_i)      (World.conflict_rate; World.conflicting_users).

Impressions (N rows): domain d ~ KuaiRand-1K's shares (S1 67 %, S0 21 %, S4 7.7 %, S2 3.5 %, S6 1.6 %).
A fraction of items [tail_item_fraction = 0.3] and of users [tail_user_fraction = 0.2] is
tail-specific: a tail domain's impression goes to a tail item with probability
tail_share_in_tail [0.5] and a head domain's with probability tail_share_in_head [0.005]; within the
chosen group the item is drawn proportional to w_i (users likewise, proportional to a log-normal
activity). Tail items therefore get few impressions each (~4 on tiny, ~20 on small), almost all in
the tail domains, and a domain-specific table of a tail domain sees only those few.

Bayes-optimal scores are the truth (metrics `bayesauc`, `bayesgauc`); World.logits also gives the
scores of restricted oracles (without the T block, without the per-user flips, additive part only),
which bound what a collapsed or a linear model can reach (see the README for the values).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from model.data import MultiDomainData, random_split
from model.metrics import auc


@dataclass(frozen=True)
class SyntheticSize:
    num_rows: int
    num_users: int
    num_items: int
    num_categories: int
    num_authors: int


# ---- shared with world v1 (model/datasets/synthetic_v1.py): changing these changes v1's data ------

SIZES = {
    "tiny": SyntheticSize(num_rows=20_000, num_users=200, num_items=1_000, num_categories=12, num_authors=100),
    "small": SyntheticSize(num_rows=1_000_000, num_users=1_000, num_items=20_000, num_categories=40, num_authors=2_000),
    "kuairand": SyntheticSize(num_rows=11_648_743, num_users=1_000, num_items=188_000, num_categories=60,
                              num_authors=20_000),
}
DOMAIN_NAMES = ("S0", "S1", "S2", "S4", "S6")
DOMAIN_SHARES = (2_407_352, 7_760_237, 402_366, 895_385, 183_403)  # KuaiRand-1K rows per tab
CLICK_RATE = 0.3
# Attribute fields: name -> vocabulary size. Some are informative (age, gender, category, author,
# tag), some are noise, as in real logs.
USER_FIELDS = {"user_age": 6, "user_gender": 2, "user_activity": 5, "user_fans": 8, "user_follow": 8,
               "user_register": 7, "user_city": 30, "user_device": 10}
ITEM_FIELDS = {"item_author": 0, "item_category": 0, "item_tag": 0, "item_duration": 10, "item_music": 50,
               "item_upload": 4, "item_visible": 3, "item_age": 12}


def calibrated_offsets(logit: torch.Tensor, domains: torch.Tensor, num_domains: int,
                       gen: torch.Generator) -> torch.Tensor:
    """Per-domain offsets (S,) that bring each domain's mean click probability to CLICK_RATE.

    Bisection on a fixed 200k-row sample keeps this cheap at 11.6 M rows.
    """
    sample = torch.randint(logit.shape[0], (min(200_000, logit.shape[0]),), generator=gen)
    lo, hi = torch.full((num_domains,), -10.0), torch.full((num_domains,), 10.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        rate = torch.zeros(num_domains).index_add_(0, domains[sample], torch.sigmoid(logit[sample] + mid[domains[sample]]))
        rate = rate / torch.bincount(domains[sample], minlength=num_domains).clamp_min(1)
        too_high = rate > CLICK_RATE
        hi = torch.where(too_high, mid, hi)
        lo = torch.where(too_high, lo, mid)
    return (lo + hi) / 2


# ---- world v2 ----------------------------------------------------------------------------------

HEAD_DOMAINS = ("S0", "S1")
TAIL_DOMAINS = ("S2", "S4", "S6")


@dataclass(frozen=True)
class WorldKnobs:
    """The planted model's settings (see the module docstring for where each enters)."""

    general_dims: int = 4  # g: directions every domain uses
    head_dims: int = 2  # h: directions only the head domains use
    tail_dims: int = 2  # t: directions of each tail domain, barely used by the heads
    head_use_of_tail: float = 0.1  # eps: weight of the T block in the head domains
    conflict_dims: int = 2  # c: general directions whose sign a user can flip per domain
    flip_rates: tuple[float, ...] = (0.25, 0.0, 0.5, 0.25, 0.5)  # rho_s per domain, DOMAIN_NAMES order
    conflict_item_mean: float = 1.0  # mu: mean of every item's profile on the block C
    tail_item_fraction: float = 0.3
    tail_user_fraction: float = 0.2
    tail_share_in_tail: float = 0.5  # P(tail item | tail domain), and P(tail user | tail domain)
    tail_share_in_head: float = 0.005  # P(tail item | head domain), and P(tail user | head domain)
    interaction: float = 1.5  # gamma
    popularity: float = 0.4
    bias_sd: float = 0.3  # of the user and author biases

    def __post_init__(self):
        for name in ("general_dims", "head_dims", "tail_dims"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, but got {name}={getattr(self, name)!r}")
        if not 0 <= self.conflict_dims <= self.general_dims:
            raise ValueError(f"conflict_dims must be in [0, general_dims={self.general_dims}], "
                             f"but got conflict_dims={self.conflict_dims!r}")
        if len(self.flip_rates) != len(DOMAIN_NAMES) or not all(0 <= r <= 1 for r in self.flip_rates):
            raise ValueError(f"flip_rates must hold {len(DOMAIN_NAMES)} probabilities ({', '.join(DOMAIN_NAMES)}), "
                             f"but got flip_rates={self.flip_rates!r}")
        for name in ("tail_item_fraction", "tail_user_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), but got {name}={getattr(self, name)!r}")
        for name in ("tail_share_in_tail", "tail_share_in_head", "head_use_of_tail"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], but got {name}={getattr(self, name)!r}")
        for name in ("interaction", "popularity", "bias_sd"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, but got {name}={getattr(self, name)!r}")

    @property
    def num_latent(self) -> int:
        return self.general_dims + self.head_dims + len(TAIL_DOMAINS) * self.tail_dims

    def blocks(self) -> dict[str, list[int]]:
        """Latent coordinates by block: G, H, C (the conflict part of G), T and T_<tail domain>."""
        g, h, t = self.general_dims, self.head_dims, self.tail_dims
        out = {"G": list(range(g)), "H": list(range(g, g + h)), "C": list(range(g - self.conflict_dims, g)),
               "T": list(range(g + h, self.num_latent))}
        for j, dom in enumerate(TAIL_DOMAINS):
            out[f"T_{dom}"] = list(range(g + h + j * t, g + h + (j + 1) * t))
        return out

    def loadings(self) -> torch.Tensor:
        """W (S, K): how much domain s uses latent direction k."""
        blocks = self.blocks()
        w = torch.zeros(len(DOMAIN_NAMES), self.num_latent)
        for s, dom in enumerate(DOMAIN_NAMES):
            w[s, blocks["G"]] = 1.0
            if dom in HEAD_DOMAINS:
                w[s, blocks["H"]] = 1.0
                w[s, blocks["T"]] = self.head_use_of_tail
            else:
                w[s, blocks[f"T_{dom}"]] = 1.0
        return w


@dataclass(frozen=True)
class World:
    """The planted parameters of one generated dataset (the ground truth of its click model)."""

    knobs: WorldKnobs
    loadings: torch.Tensor  # (S, K) W
    user_pref: torch.Tensor  # (U, K) p_u
    item_profile: torch.Tensor  # (I, K) v_i
    user_flip: torch.Tensor  # (U, S) bool f[u, s]
    tail_users: torch.Tensor  # (U,) bool
    tail_items: torch.Tensor  # (I,) bool
    user_bias: torch.Tensor  # (U,)
    item_bias: torch.Tensor  # (I,) popularity * pop_i + b_author(i)
    offsets: torch.Tensor = field(default_factory=lambda: torch.zeros(len(DOMAIN_NAMES)))  # (S,) beta_s

    def logits(self, users: torch.Tensor, items: torch.Tensor, domains: torch.Tensor, *,
               tail_directions: bool = True, user_flips: bool = True, interactions: bool = True) -> torch.Tensor:
        """The planted logit (n,) of rows (users, items, domains); the switches drop one part each.

        tail_directions=False: W without the T block (what a model that collapsed onto the head
        domains' subspace can use); user_flips=False: sigma = +1 (no per-user conflict);
        interactions=False: the additive part only (what a model without interactions can use).
        """
        logit = self.offsets[domains] + self.user_bias[users] + self.item_bias[items]
        if not interactions:
            return logit
        w = self.loadings.clone()
        if not tail_directions:
            w[:, self.knobs.blocks()["T"]] = 0.0
        sign = torch.ones(len(users), w.shape[1])
        if user_flips:
            flip = self.user_flip[users, domains]  # (n,)
            sign[:, self.knobs.blocks()["C"]] = torch.where(flip, -1.0, 1.0).unsqueeze(1)
        row_w = w[domains]  # (n, K)
        affinity = (row_w * sign * self.user_pref[users] * self.item_profile[items]).sum(1)  # (n,)
        affinity = affinity / self.loadings[domains].pow(2).sum(1).sqrt()
        return logit + self.knobs.interaction * affinity

    def conflict_rate(self, i: int, j: int) -> float:
        """P(a user's taste on the block C is reversed between domains i and j) = r_ij."""
        ri, rj = self.knobs.flip_rates[i], self.knobs.flip_rates[j]
        return ri * (1 - rj) + rj * (1 - ri)

    def conflicting_users(self, i: int, j: int) -> torch.Tensor:
        """(U,) bool: the users whose taste on the block C is reversed between domains i and j."""
        return self.user_flip[:, i] != self.user_flip[:, j]


def make_synthetic(size: str = "tiny", seed: int = 0, knobs: WorldKnobs = WorldKnobs()) -> MultiDomainData:
    """Generate the named size of world v2 deterministically from seed (same seed, same data)."""
    return generate(size, seed, knobs)[0]


def generate(size: str = "tiny", seed: int = 0, knobs: WorldKnobs = WorldKnobs()) -> tuple[MultiDomainData, World]:
    """The data and its planted world (for checks against the truth: conflicts, restricted oracles)."""
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; valid: {sorted(SIZES)}")
    spec = SIZES[size]
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=gen)  # noqa: E731
    randint = lambda high, n: torch.randint(high, (n,), generator=gen)  # noqa: E731
    rand = lambda n: torch.rand(n, generator=gen)  # noqa: E731
    U, I, N, K, S = spec.num_users, spec.num_items, spec.num_rows, knobs.num_latent, len(DOMAIN_NAMES)

    # Users: attributes, group preference, per-domain flips, tail membership, activity.
    user_attr = {name: randint(vocab, U) for name, vocab in USER_FIELDS.items()}
    group = user_attr["user_age"] * 2 + user_attr["user_gender"]
    user_pref = randn(12, K)[group] + 0.7 * randn(U, K)  # (U, K)
    user_bias = knobs.bias_sd * randn(U)
    user_flip = torch.rand(U, S, generator=gen) < torch.tensor(knobs.flip_rates)  # (U, S)
    tail_users = rand(U) < knobs.tail_user_fraction
    user_weight = torch.exp(randn(U)).double()  # log-normal activity
    user_attr["user_activity"] = torch.bucketize(user_weight.log().float(), torch.tensor([-1.0, -0.3, 0.3, 1.0]))

    # Items: category-driven profile, author bias, Zipf popularity, tail membership.
    category = randint(spec.num_categories, I)
    item_profile = randn(spec.num_categories, K)[category] + 0.7 * randn(I, K)  # (I, K)
    item_profile[:, knobs.blocks()["C"]] += knobs.conflict_item_mean
    author = randint(spec.num_authors, I)
    author_bias = knobs.bias_sd * randn(spec.num_authors)
    item_weight = 1.0 / torch.arange(1, I + 1, dtype=torch.float64) ** 1.05
    item_weight = item_weight[torch.randperm(I, generator=gen)]  # popularity independent of id
    popularity = ((item_weight.log() - item_weight.log().mean()) / item_weight.log().std()).float()
    tail_items = rand(I) < knobs.tail_item_fraction
    item_attr = {"item_author": author, "item_category": category, "item_tag": category * 4 + randint(4, I)}
    item_vocab = {"item_author": spec.num_authors, "item_category": spec.num_categories,
                  "item_tag": spec.num_categories * 4}
    for name, vocab in ITEM_FIELDS.items():
        if vocab:
            item_attr[name], item_vocab[name] = randint(vocab, I), vocab

    # Impressions: domain by KuaiRand's shares; tail or general group by the domain; then user by
    # activity and item by popularity within the group.
    shares = torch.tensor(DOMAIN_SHARES, dtype=torch.float64)
    domains = torch.multinomial(shares / shares.sum(), N, replacement=True, generator=gen)
    tail_share = torch.tensor([knobs.tail_share_in_head if d in HEAD_DOMAINS else knobs.tail_share_in_tail
                               for d in DOMAIN_NAMES])
    users = _draw_in_groups(user_weight, tail_users, rand(N) < tail_share[domains], gen)
    items = _draw_in_groups(item_weight, tail_items, rand(N) < tail_share[domains], gen)

    world = World(knobs=knobs, loadings=knobs.loadings(), user_pref=user_pref, item_profile=item_profile,
                  user_flip=user_flip, tail_users=tail_users, tail_items=tail_items, user_bias=user_bias,
                  item_bias=knobs.popularity * popularity + author_bias[author])
    logit = world.logits(users, items, domains)
    offsets = calibrated_offsets(logit, domains, S, gen)
    world = replace(world, offsets=offsets)
    truth = torch.sigmoid(logit + offsets[domains])
    labels = torch.bernoulli(truth, generator=gen)

    columns = {"user_id": (users, U), "item_id": (items, I), "domain_id": (domains, S)}
    columns |= {name: (attr[users], USER_FIELDS[name]) for name, attr in user_attr.items()}
    columns |= {name: (attr[items], item_vocab[name]) for name, attr in item_attr.items()}
    data = MultiDomainData(
        name=f"synthetic:{size}",
        features=torch.stack([col for col, _ in columns.values()], dim=1),  # (N, F)
        labels=labels.float(), domains=domains, users=users, split=random_split(N, seed),
        field_names=tuple(columns), vocab_sizes=tuple(v for _, v in columns.values()),
        domain_names=DOMAIN_NAMES, truth=truth.float(),
    ).validate()
    return data, world


def _draw_in_groups(weight: torch.Tensor, in_tail: torch.Tensor, want_tail: torch.Tensor,
                    gen: torch.Generator) -> torch.Tensor:
    """Ids (N,): row r is drawn proportional to weight among the ids with in_tail == want_tail[r]."""
    out = torch.empty(len(want_tail), dtype=torch.int64)
    for tail in (False, True):
        ids = (in_tail == tail).nonzero().squeeze(1)
        rows = (want_tail == tail).nonzero().squeeze(1)
        if len(rows):
            out[rows] = ids[torch.multinomial(weight[ids], len(rows), replacement=True, generator=gen)]
    return out


def reference_aucs(data: MultiDomainData, world: World, split: str = "test") -> dict[str, dict[str, float]]:
    """AUC per domain of the Bayes scores and of the restricted oracles on one split.

    {scorer: {domain: auc}}, scorers: bayes (the truth), no_tail_directions, no_user_flips,
    collapsed (neither: the head domains' shared subspace only), additive (no interactions).
    """
    rows = data.subset(split)
    users, items = rows.users, rows.features[:, data.field_names.index("item_id")]
    scorers = {
        "bayes": world.logits(users, items, rows.domains),
        "no_tail_directions": world.logits(users, items, rows.domains, tail_directions=False),
        "no_user_flips": world.logits(users, items, rows.domains, user_flips=False),
        "collapsed": world.logits(users, items, rows.domains, tail_directions=False, user_flips=False),
        "additive": world.logits(users, items, rows.domains, interactions=False),
    }
    out = {}
    for name, score in scorers.items():
        out[name] = {dom: auc(score[rows.domains == d], rows.labels[rows.domains == d])
                     for d, dom in enumerate(data.domain_names)}
        out[name]["overall"] = auc(score, rows.labels)
    return out
