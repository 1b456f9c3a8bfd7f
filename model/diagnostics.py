"""Mechanism diagnostics of the paper's Sec. 3 and Figs. 2, 4, 5: dimensional collapse and diversity.

Pure functions of tensors; `gather_diagnostics` combines them for one model given its parts through
a small explicit interface (embedding tables by name, expert outputs by domain), and the adapters at
the end extract those parts from the Crocodile family (model/nets/crocodile.py).

Letters: M experts, n rows, D expert output dim, d embedding dim.

Information abundance (Guo et al. 2023; paper Sec. 3.1): IA(E) = ||sigma(E)||_1 / ||sigma(E)||_inf
over the singular values of E (rows = items or samples, columns = dimensions), uncentred as in the
paper. 1 <= IA <= number of columns; a small IA means a few directions dominate (collapse).

Diversity Index (paper Sec. 3.2, whose formula was lost in extraction; this is our exact version):
  Conflict users of domains (i, j), from labels (normally the train rows):
      U_con(i, j) = { u : n_ui >= m, n_uj >= m, (ybar_ui - ybar_i) (ybar_uj - ybar_j) < 0 }
  with n_us and ybar_us the number and mean label of u's rows in domain s, ybar_s the mean label of
  domain s, m = min_rows (3): the user likes one domain more than its average and the other less,
  i.e. has opposite labels across the two domains.
  Conflict samples D_con(i, j): the evaluated rows (normally validation) of domains i and j whose
  user is in U_con(i, j). With r_kp = ||O_k^(p)||_2 the norm of expert p's output on row k,
      DI(i, j) = (1 / |D_con|) * sum_{k in D_con} 1[ max_p r_kp > tau_t * s  and  min_p r_kp < tau_b * s ]
  where s is the median of r_kp over all evaluated rows of all domains and all experts.
  Defaults tau_t = 2, tau_b = 0.5: the thresholds are relative to the median norm because ReLU
  expert outputs have no fixed scale (it moves with training, alpha and any normalisation), so
  absolute thresholds would compare models by their scale rather than by their diversity; a factor
  of 2 above and below the typical norm is symmetric in log-norm and marks an expert that clearly
  speaks up or stays (nearly) silent for that sample. DI is 0 when every expert answers a sample
  with a similar norm and 1 when, for every conflict sample, some expert is loud and another silent.
  DI is NaN when D_con is empty. With M = 1 it is 0.
"""
from __future__ import annotations

import itertools
import math
from contextlib import contextmanager

import torch

SPECTRUM_VALUES = 64  # longest spectrum saved per matrix
SPECTRUM_FLOOR = 1e-12  # sigma_i / sigma_max below this is saved as log(1e-12) (JSON has no -inf)
FREQUENCY_GROUPS = 5  # item exposure-frequency groups, high to low (paper Fig. 2b)
TAU_T, TAU_B = 2.0, 0.5  # DI thresholds, relative to the median expert-output norm
MIN_ROWS = 3  # rows a user needs in each domain of a pair to be judged in conflict


@contextmanager
def one_thread():
    """Run torch single-threaded inside the block (the diagnostics do).

    The SVDs here are small (at most ~10^5 x 64). Multi-threaded LAPACK on them was up to 100x
    slower on a busy 2-core machine (22 s instead of 0.17 s for the 25 expert matrices of one
    call, measured); one thread is never far from the best on these shapes.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ---- collapse: singular values -----------------------------------------------------------------

def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float64) of a 2-D tensor."""
    if matrix.dim() != 2:
        raise ValueError(f"expected a 2-D matrix (rows, dims), got shape {tuple(matrix.shape)}")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise ValueError(f"cannot take singular values of an empty matrix of shape {tuple(matrix.shape)}")
    return torch.linalg.svdvals(matrix.detach().to(torch.float64).cpu())


def information_abundance(E: torch.Tensor) -> float:
    """IA(E) = ||sigma(E)||_1 / ||sigma(E)||_inf, in [1, E.shape[1]]; NaN for a zero matrix."""
    return _abundance(singular_values(E))


def _abundance(sigma: torch.Tensor) -> float:
    top = float(sigma[0])
    return float(sigma.sum()) / top if top > 0 else math.nan


def log_spectrum(E: torch.Tensor, max_values: int = SPECTRUM_VALUES) -> list[float]:
    """Normalised sorted log singular values log(sigma_i / sigma_1), descending (Fig. 4).

    At most max_values values: longer spectra keep max_values evenly spaced ranks, first and last
    included. Ratios below SPECTRUM_FLOOR are saved as log(SPECTRUM_FLOOR).
    """
    return _log_spectrum(singular_values(E), max_values)


def _log_spectrum(sigma: torch.Tensor, max_values: int = SPECTRUM_VALUES) -> list[float]:
    if float(sigma[0]) == 0:
        return [math.log(SPECTRUM_FLOOR)] * min(len(sigma), max_values)
    if len(sigma) > max_values:
        sigma = sigma[torch.linspace(0, len(sigma) - 1, max_values).round().long()]
    return (sigma / sigma[0]).clamp_min(SPECTRUM_FLOOR).log().tolist()


def ia_by_frequency(E: torch.Tensor, counts: torch.Tensor, groups: int = FREQUENCY_GROUPS) -> list[float]:
    """IA of the rows of E in `groups` equal-size exposure-frequency groups, highest first (Fig. 2b).

    counts (rows,): exposures of each row of E (e.g. train impressions of each item). Rows are
    ranked by count (ties in row order) and cut into groups of equal size (the first ones one row
    larger when the rows do not divide evenly).
    """
    if counts.shape != (E.shape[0],):
        raise ValueError(f"counts must have one entry per row of E ({E.shape[0]}), got shape {tuple(counts.shape)}")
    if E.shape[0] < groups:
        raise ValueError(f"need at least {groups} rows for {groups} frequency groups, got {E.shape[0]}")
    order = torch.sort(counts.cpu(), descending=True, stable=True).indices
    return [information_abundance(E[part]) for part in torch.tensor_split(order, groups)]


def expert_ia(outputs: torch.Tensor) -> list[float]:
    """IA of each expert's outputs (n, D) on the given rows (Fig. 2a). outputs (M, n, D)."""
    if outputs.dim() != 3:
        raise ValueError(f"expert outputs must be (M, n, D), got shape {tuple(outputs.shape)}")
    return [information_abundance(o) for o in outputs]


# ---- diversity ---------------------------------------------------------------------------------

def output_norms(outputs: torch.Tensor) -> torch.Tensor:
    """||O_k^(p)||_2 (M, n) of expert outputs (M, n, D)."""
    if outputs.dim() != 3:
        raise ValueError(f"expert outputs must be (M, n, D), got shape {tuple(outputs.shape)}")
    return outputs.detach().to(torch.float64).norm(dim=-1)


def median_norm(outputs: list[torch.Tensor]) -> float:
    """s: the median of ||O_k^(p)||_2 over all rows and experts of all the given (M, n, D) tensors."""
    return float(torch.cat([output_norms(o).flatten().cpu() for o in outputs]).median())


def diversity_index(outputs: torch.Tensor, conflict: torch.Tensor, *, tau_t: float = TAU_T, tau_b: float = TAU_B,
                    scale: float | None = None) -> float:
    """DI over the rows where conflict (n,) is True: the share whose experts hold both a norm
    > tau_t * scale and one < tau_b * scale. outputs (M, n, D); scale defaults to median_norm of
    these outputs (pass the median over all domains' rows to compare pairs). NaN without conflict rows.
    """
    if not tau_t > tau_b >= 0:
        raise ValueError(f"DI thresholds need tau_t > tau_b >= 0, but got tau_t={tau_t}, tau_b={tau_b}")
    if conflict.shape != (outputs.shape[1],):
        raise ValueError(f"conflict must be a (n,) mask with n = {outputs.shape[1]} rows, got {tuple(conflict.shape)}")
    if not bool(conflict.any()):
        return math.nan
    s = median_norm([outputs]) if scale is None else scale
    norms = output_norms(outputs)[:, conflict.to(outputs.device)]  # (M, n_con)
    both = (norms.max(dim=0).values > tau_t * s) & (norms.min(dim=0).values < tau_b * s)
    return float(both.double().mean())


def _user_deviation(users: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, s: int,
                    min_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted ids, ybar_us - ybar_s) of the users with >= min_rows rows in domain s."""
    mask = domains == s
    ids, inverse, n = torch.unique(users[mask], return_inverse=True, return_counts=True)
    y = labels[mask].to(torch.float64)
    clicks = torch.zeros(len(ids), dtype=torch.float64, device=ids.device).index_add_(0, inverse, y)
    keep = n >= min_rows
    mean = y.mean() if len(y) else torch.zeros((), dtype=torch.float64)
    return ids[keep], (clicks / n)[keep] - mean


def _opposite(dev_i: tuple[torch.Tensor, torch.Tensor], dev_j: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    (ids_i, d_i), (ids_j, d_j) = dev_i, dev_j
    both = torch.isin(ids_i, ids_j)
    ids = ids_i[both]
    return ids[d_i[both] * d_j[torch.searchsorted(ids_j, ids)] < 0]  # ids_j is sorted (torch.unique)


def conflict_users(users: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, i: int, j: int,
                   min_rows: int = MIN_ROWS) -> torch.Tensor:
    """U_con(i, j) (sorted user ids): users with >= min_rows rows in both domains whose mean label
    is above the domain's mean in one and below it in the other. users, labels, domains (N,)."""
    return _opposite(_user_deviation(users, labels, domains, i, min_rows),
                     _user_deviation(users, labels, domains, j, min_rows))


def conflict_users_by_pair(users: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
                           domain_names: tuple[str, ...],
                           min_rows: int = MIN_ROWS) -> dict[tuple[str, str], torch.Tensor]:
    """U_con for every domain pair (names in domain order), from rows such as the train split."""
    dev = [_user_deviation(users, labels, domains, s, min_rows) for s in range(len(domain_names))]
    return {(domain_names[i], domain_names[j]): _opposite(dev[i], dev[j])
            for i, j in itertools.combinations(range(len(domain_names)), 2)}


# ---- everything for one model ------------------------------------------------------------------

def gather_diagnostics(
    embedding_tables: dict[str, torch.Tensor],
    expert_outputs: dict[str, torch.Tensor],
    *,
    row_users: dict[str, torch.Tensor] | None = None,
    conflicts: dict[tuple[str, str], torch.Tensor] | None = None,
    exposure: dict[str, torch.Tensor] | None = None,
    tau_t: float = TAU_T,
    tau_b: float = TAU_B,
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """All diagnostics of one model: (scalars, spectra).

    embedding_tables: name -> (rows, d), the rows seen in training, e.g. "item_id_set0".
    expert_outputs: domain -> (M, n, D), the experts' outputs on a fixed sample of that domain's
    (validation) rows. row_users: domain -> (n,) users of those rows, and conflicts: (domain a,
    domain b) -> conflict user ids (conflict_users_by_pair); both are needed for DI.
    exposure: table name -> (rows,) exposure counts of the table's rows, for the frequency groups.

    Scalars: ia_<table>, ia_<table>_freq<g> (g = 1 highest .. 5 lowest; tables in `exposure`),
    ia_expert<p>_<domain>, di_<a>_<b>. Spectra (log_spectrum): <table>, expert<p>_<domain>.
    """
    if (row_users is None) != (conflicts is None):
        raise ValueError("DI needs both row_users and conflicts (or neither, to skip DI)")
    with one_thread():
        return _gather(embedding_tables, expert_outputs, row_users, conflicts, exposure, tau_t, tau_b)


def _gather(embedding_tables, expert_outputs, row_users, conflicts, exposure, tau_t, tau_b):
    scalars: dict[str, float] = {}
    spectra: dict[str, list[float]] = {}
    for name, table in embedding_tables.items():
        sigma = singular_values(table)  # once for both IA and spectrum
        scalars[f"ia_{name}"], spectra[name] = _abundance(sigma), _log_spectrum(sigma)
        if exposure is not None and name in exposure:
            for g, value in enumerate(ia_by_frequency(table, exposure[name]), start=1):
                scalars[f"ia_{name}_freq{g}"] = value
    for domain, outputs in expert_outputs.items():
        if outputs.dim() != 3:
            raise ValueError(f"expert outputs of {domain!r} must be (M, n, D), got shape {tuple(outputs.shape)}")
        for p in range(outputs.shape[0]):
            sigma = singular_values(outputs[p])
            scalars[f"ia_expert{p}_{domain}"], spectra[f"expert{p}_{domain}"] = _abundance(sigma), _log_spectrum(sigma)
    if conflicts is not None:
        missing = [d for d in expert_outputs if d not in row_users]
        if missing:
            raise ValueError(f"row_users lacks domains {missing}; it has {sorted(row_users)}")
        scale = median_norm(list(expert_outputs.values()))
        for a, b in itertools.combinations(expert_outputs, 2):
            ids = conflicts.get((a, b), conflicts.get((b, a)))
            if ids is None:
                raise ValueError(f"conflicts lacks the domain pair ({a!r}, {b!r}); it has {sorted(conflicts)}")
            masks = [torch.isin(row_users[d], ids.to(row_users[d].device)) for d in (a, b)]
            outputs = torch.cat([expert_outputs[a], expert_outputs[b].to(expert_outputs[a].device)], dim=1)
            scalars[f"di_{a}_{b}"] = diversity_index(outputs, torch.cat(masks), tau_t=tau_t, tau_b=tau_b, scale=scale)
    return scalars, spectra


def exposure_counts(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct ids, how often each occurs): the rows seen in training and their exposures."""
    return torch.unique(ids, return_counts=True)


def sample_rows(domains: torch.Tensor, num_domains: int, per_domain: int, seed: int = 0) -> list[torch.Tensor]:
    """A fixed sample (up to per_domain row indices, sorted) of each domain's rows, from its own generator."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in range(num_domains):
        rows = (domains.cpu() == s).nonzero().squeeze(1)
        pick = torch.randperm(len(rows), generator=gen)[:per_domain]
        out.append(rows[pick].sort().values)
    return out


# ---- adapters for the Crocodile family (model/nets/crocodile.py) ---------------------------------------

def crocodile_embedding_tables(model, field_indices: dict[str, int],
                               seen_rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's embedding tables of the named fields, restricted to the rows seen in training.

    model.embedding is a MultiEmbedding: one (sum of vocab sizes, M*d) table whose field f starts at
    row offsets[f], set p in columns p*d:(p+1)*d. field_indices: field name -> column index in the
    features (e.g. {"user_id": 0, "item_id": 1}); seen_rows: field name -> ids seen in training
    (exposure_counts). Returns {"<field>_set<p>": (seen, d)} and, for PG/PEG gating, the separate
    prior table as "<field>_prior".
    """
    out = {}
    emb = model.embedding
    weight = emb.weight.detach()
    for name, col in field_indices.items():
        rows = weight[emb.offsets[col] + seen_rows[name].to(weight.device)]  # (seen, M*d)
        for p in range(emb.num_sets):
            out[f"{name}_set{p}"] = rows[:, p * emb.dim:(p + 1) * emb.dim]
    prior = getattr(model, "prior_embedding", None)
    if prior is not None:
        prior_weight = prior.weight.detach()
        positions = model.prior_fields.tolist()
        for name, col in field_indices.items():
            if col in positions:
                slot = positions.index(col)
                out[f"{name}_prior"] = prior_weight[prior.offsets[slot] + seen_rows[name].to(prior_weight.device)]
    return out


@torch.no_grad()
def crocodile_expert_outputs(model, features: torch.Tensor, domains: torch.Tensor, rows: list[torch.Tensor],
                             domain_names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """domain -> expert outputs (M, n, D) of the model on rows[s] (row indices into features/domains)."""
    was_training = model.training
    model.eval()
    try:
        return {dom: model(features[idx], domains[idx]).expert_outputs.float()
                for dom, idx in zip(domain_names, rows) if len(idx)}
    finally:
        model.train(was_training)
