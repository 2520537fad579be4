"""Queue-based long-running tasks: records, stores, the service, the worker and human review.

- :mod:`.model`: the record, its states and the store contract; :mod:`.view`: what callers see of it;
- :mod:`.service`: :class:`~.service.TaskService`, the public API (submit, get, cancel, decide, wait);
- :mod:`.worker`: :class:`~.worker.Worker`, which runs what the service queues (``python -m
  agent_runtime.worker`` is its process);
- stores: :mod:`.store_sqlite` (local default), :mod:`.store_redis`, :mod:`.store_cosmos`, chosen by
  :mod:`.factory` from ``state_backend``;
- :mod:`.cas` (read-modify-write with compare-and-set), :mod:`.callbacks`, :mod:`.errors`.
"""
