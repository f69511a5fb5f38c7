"""The level-triggered control loop: caches fed by kopf's watch events, a work queue, reconcilers."""
