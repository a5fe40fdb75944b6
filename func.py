"""Function transforms, as in JAX and ``torch.func``: ``grad``, ``value_and_grad``, ``vjp``,
``jvp``, ``jacrev``, ``jacfwd``, ``hessian`` and ``vmap``, and ``functional_call`` to run a
module with given parameters. Transforms nest to any depth and compile: ``ap.compile(
vmap(grad(loss)))`` is one generated function."""

from .nn.stateless import functional_call
from .runtime.batching import vmap
from .runtime.transforms import grad, hessian, jacfwd, jacrev, jvp, value_and_grad, vjp

__all__ = ["functional_call", "grad", "hessian", "jacfwd", "jacrev", "jvp", "value_and_grad",
           "vjp", "vmap"]
