"""Toy inputs and small models for the architecture tests (imported as `from nets_toys import ...`)."""
import torch

from model.architectures import build_model
from model.config import RunConfig

VOCAB = (7, 11, 3, 5)  # user_id, item_id, domain_id, one attribute
PRIOR = (0, 1, 2)
SMALL = {"expert_hidden": (8, 6), "tower_hidden": (4,), "embedding_dim": 4}


def toy_batch(num_rows: int = 32, num_domains: int = 3, seed: int = 0):
    """(features (B, F), domains (B,), labels (B,)) over VOCAB."""
    g = torch.Generator().manual_seed(seed)
    features = torch.stack([torch.randint(v, (num_rows,), generator=g) for v in VOCAB], dim=1)
    domains = torch.randint(num_domains, (num_rows,), generator=g)
    labels = torch.randint(2, (num_rows,), generator=g).float()
    return features, domains, labels


def toy_model(architecture: str, num_domains: int = 3, seed: int = 0, **keys):
    """A small model of the architecture with its defaults, keys (flat config) on top."""
    config = RunConfig().with_overrides({"architecture": architecture, **SMALL, **keys}).model
    return build_model(config, vocab_sizes=VOCAB, num_domains=num_domains, prior_fields=PRIOR, seed=seed)
