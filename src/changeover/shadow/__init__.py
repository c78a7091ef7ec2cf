"""The gateway: serve the incumbent (or the candidate, by stage), mirror to candidates, log both.

The feature package on top: the app (``shadow.app``: ``create_app``, ``GatewayService``,
behind ``changeover serve``), the request path, upstreams, the mirror, the log
writer, the admin API, metrics, the judging worker and keep-alive. It drives
``changeover.rollout`` (the stage flag and the controller), which stands below it
and imports nothing of it; both read the log through ``changeover.shadowlog``.
Import the modules themselves (``changeover.shadow.app``): this package re-exports
nothing, so reading one module (the report's ``shadow.report``) does not load the app.
"""
