"""Re-run a bundle's torch weights on its stored held-out inputs (``skyguard models verify
--torch``): the weights, the architecture code and the stored outputs must still agree."""

from __future__ import annotations

import numpy as np
import torch

from core.bundle import PARITY_TOLERANCE, Bundle, BundleError, max_parity_error

from . import models


def torch_model(bundle: Bundle) -> torch.nn.Module:
    """The bundle's network with its ``weights.pt``, in eval mode, on the CPU."""
    info = bundle.info
    net = models.build(info["architecture"], **info["hyperparameters"].get("model_kwargs", {}))
    net.load_state_dict(
        torch.load(bundle.path / "weights.pt", map_location="cpu", weights_only=True)
    )
    return net.eval()


def torch_parity(bundle: Bundle) -> dict[str, float]:
    """Largest scaled differences between ``weights.pt`` run now and the stored torch outputs."""
    info = bundle.info
    net = torch_model(bundle)
    p = bundle.parity_data()
    extra = () if "ebv" not in p else (torch.from_numpy(p["ebv"]),)
    with torch.no_grad():
        latent = net.features(torch.from_numpy(p["image"]), *extra)
        probs = torch.softmax(net.head(latent), 1)
    name = info["outputs"][0]
    got = {name: probs.numpy(), "latent": latent.numpy()}
    err = max_parity_error({k: p[f"torch_{k}"] for k in got}, got)
    if not max(err.values()) <= PARITY_TOLERANCE:
        raise BundleError(f"{bundle.path / 'weights.pt'}: torch outputs changed: {err}")
    return {k: float(np.float64(v)) for k, v in err.items()}
