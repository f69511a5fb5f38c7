"""Reference model server: a small real classifier speaking the Open Inference Protocol v2.

It exists so the operator can be tested end to end against something that
behaves like a production runtime (health, metadata, versions, Prometheus
histograms), including the ways a runtime misbehaves: see `faults`. One process
can serve many replicas, each on its own address, which is how the sandbox's
replica farm simulates thousands of pods; see `multi.MultiReplicaServer`.
"""
