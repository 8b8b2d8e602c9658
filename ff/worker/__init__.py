"""The ff worker SDK: `Worker`, `ClaimedTask` and the handler runtime.

    from ff.worker import Worker

    worker = Worker(worker_id="mailer", lanes=["default"])

    @worker.handler("send_email")
    async def send_email(task, payload):
        ...

Workers talk to Valkey directly for their leases (claim, renew, complete); claim grants
come from the server's claim route when `server_url` is given, else from the scheduler run
in the worker. The public surface is what `__all__` lists (tests/worker checks it).
"""

from ff.worker._task import ClaimedTask, LeaseLostError
from ff.worker._worker import Worker, WorkerConfig, default_valkey_url

__all__ = ["ClaimedTask", "LeaseLostError", "Worker", "WorkerConfig", "default_valkey_url"]
