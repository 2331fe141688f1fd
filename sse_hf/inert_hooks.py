"""Hooks that copies of a model do not carry: `copy.deepcopy`, `pickle` and `torch.save` get an inert stand-in.

The stand-in removes itself from the module's hook dicts on its first call, which reaches into torch's private
`_forward_pre_hooks`/`_forward_hooks` dicts (and their `*_with_kwargs`/`_always_called` companions).
"""

from __future__ import annotations

from typing import Any

from torch import nn

# torch's private per-module dicts that hold a registered hook, keyed by the hook's id.
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")
_COMPANION_DICTS = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


class CopyInertHook:
    """A hook SSE registers: a copy or a reloaded model gets a `DetachedHook` in its place.

    So a copy or a reloaded model carries no patch (patch it again if it should swap) and never shares counts.
    """

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def __deepcopy__(self, memo) -> DetachedHook:
        return DetachedHook()

    def __reduce__(self):
        return (DetachedHook, ())


class DetachedHook:
    """Stands in for an SSE hook in a copied or unpickled model: does nothing and removes itself on first call."""

    def __call__(self, module: nn.Module, *rest: Any) -> None:
        for name in _HOOK_DICTS:
            hooks = getattr(module, name, {})
            for key in [key for key, hook in hooks.items() if hook is self]:
                del hooks[key]
                for extra in _COMPANION_DICTS:
                    getattr(module, extra, {}).pop(key, None)
