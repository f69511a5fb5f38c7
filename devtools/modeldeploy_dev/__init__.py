"""modeldeploy_dev: the development tooling around the operator, never shipped with it.

The sandbox control plane built from Go modules (`sandbox`), its replica farm and the
many-replicas model server the farm runs (`multi`), and the guided demo (`demo`). It imports
`modeldeploy`; `modeldeploy` never imports it (an import-linter contract), so neither the
operator wheel nor the image carries any of it.
"""
