"""`make bench`: load the running stack through the JWT gateway and measure the whole pipeline.

Phases of one invocation (see docs/performance.md): the load generator's own ceiling on
`/health`, the tracked main run (open loop at RATE, or closed loop at CONCURRENCY), the step
phase that finds the pipeline's saturation point and the latency at fractions of it
(`--no-saturation` skips both), and the accept-capacity comparison of Ray Serve with plain
uvicorn serving the same FastAPI app.
"""
