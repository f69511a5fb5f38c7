"""Model artifacts: where they live (`location`, pure) and how a pod gets them (`fetch`)."""
