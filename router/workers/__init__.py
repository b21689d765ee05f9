"""The background workers of the service, each built on :class:`router.workers.loop.Loop`.

- :mod:`router.workers.intake`: intake rows → incidents (the intake processor);
- :mod:`router.workers.scheduler`: due incident timers → outbox rows;
- :mod:`router.workers.dispatcher`: outbox rows → channels, one lane per channel, with
  :mod:`~router.workers.retry`, :mod:`~router.workers.ratelimit` and
  :mod:`~router.workers.breaker`;
- :mod:`router.workers.retention`: old history pruned;
- :mod:`router.workers.reloader`: rule files watched and reloaded;
- :mod:`router.workers.backpressure`: the backlog sampled for the back-pressure decision;
- :mod:`router.workers.acks`: the acknowledgement service (not a loop): answers,
  waiting requests, opt-outs, SMS replies.

They are built and started by the composition root, :mod:`router.app`.
"""
