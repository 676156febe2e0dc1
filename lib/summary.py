"""Model summaries computed from the model itself: parameters, layer table, receptive field."""
import pandas as pd
import torch
import torch.nn as nn


def count_params(model):
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _trace(model, input_size=(1, 1, 28, 28)):
    """Run one dummy batch; return [(name, module, input shape, output shape)] of the leaf
    modules in the order they execute."""
    calls, hooks = [], []
    for name, m in model.named_modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda m, i, o, name=name: calls.append((name, m, tuple(i[0].shape), tuple(o.shape)))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return calls


def layer_table(model, input_size=(1, 1, 28, 28)):
    """One row per executed leaf layer: name, type, output shape (C, H, W), parameters."""
    rows = [dict(layer=name, type=type(m).__name__, output=out[1:],
                 params=sum(p.numel() for p in m.parameters()))
            for name, m, _, out in _trace(model, input_size)]
    return pd.DataFrame(rows)


def _geometry(m, in_shape):
    """(kernel, stride, padding) of a layer that changes the receptive field, else None."""
    if all(hasattr(m, a) for a in ("kernel_size", "stride", "padding")):  # convs, pools, BlurPool
        # a k x 1 or 1 x k kernel counts by its height (its 1 x k partner follows it)
        k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
        return k, s, p
    if isinstance(m, nn.AdaptiveAvgPool2d):  # global pooling: one window over the whole map
        return in_shape[-1], in_shape[-1], 0
    return None


def rf_table(model, input_size=(1, 1, 28, 28)):
    """Receptive field after each conv/pool: r_out = r_in + (k - 1) * j_in, j_out = j_in * s."""
    rows, rf, jump = [], 1, 1
    for name, m, in_shape, out in _trace(model, input_size):
        geometry = _geometry(m, in_shape)
        if geometry is None:
            continue
        k, s, p = geometry
        rf, jump = rf + (k - 1) * jump, jump * s
        rows.append(dict(layer=name, type=type(m).__name__, kernel=k, stride=s, padding=p,
                         size_out=out[-1], jump=jump, rf=rf))
    return pd.DataFrame(rows)



def macs_per_image(model, input_size=(1, 1, 28, 28)):
    """Multiply-accumulates of one forward pass of one image (torchinfo's count)."""
    import torchinfo
    return torchinfo.summary(model, input_size, verbose=0).total_mult_adds


def show(model, name):
    """Notebook view: parameter count, layer table and receptive-field table."""
    from IPython.display import display
    print(f"{name}: {count_params(model):,} trainable parameters, "
          f"{macs_per_image(model):,} multiply-accumulates per image")
    display(layer_table(model))
    display(rf_table(model))
