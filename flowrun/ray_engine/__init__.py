"""Dataset runs on a Ray cluster (``flowrun run FLOW --dataset FILE --engine ray``).

Module map: :mod:`.driver` (the session, the workers, rows out and results back),
:mod:`.worker` (the actor running flowrun's asyncio runner over its rows),
:mod:`.budget` (one rate budget for the cluster, held by one actor), :mod:`.sealed`
(secrets for the workers' environment, never whole in Ray's logs). Ray is imported
only when a run uses it (``pip install 'flowrun[ray]'``).
"""

from .driver import RayDatasetRunner, RaySettings, require_ray

__all__ = ["RayDatasetRunner", "RaySettings", "require_ray"]
