"""Reference model server: a small real classifier speaking the Open Inference Protocol v2.

It exists so the operator can be tested end to end against something that
behaves like a production runtime (health, metadata, versions, Prometheus
histograms), including the ways a runtime misbehaves: see `faults`. Its pieces
(`app.create_runner`, `replica.ReplicaRegistry`) also let one process serve many
replicas, each on its own address: the sandbox's replica farm does that, in the
development package `modeldeploy_dev` (not shipped with the operator).
"""
